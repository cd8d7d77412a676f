-- Corpus: statements labelled destructive. Each case starts at a '-- case:' line; the last statement
-- of a case is the one labelled (earlier ones are its context: the same migration file).

-- case: destructive-001
drop table public.events;

-- case: destructive-002
drop table events;

-- case: destructive-003
drop table public."User";

-- case: destructive-004
drop table "Post";

-- case: destructive-005
drop table scratch.users;

-- case: destructive-006
drop table public.staging;

-- case: destructive-007
drop table audit_log;

-- case: destructive-008
drop table public.profiles;

-- case: destructive-009
drop table public.moods;

-- case: destructive-010
drop table public.scores;

-- case: destructive-011
drop table public.measurements_2025;

-- case: destructive-012
drop table public.items_checked;

-- case: destructive-013
drop table if exists public.events;

-- case: destructive-014
drop table public.items cascade;

-- case: destructive-015
drop table public.orders cascade;

-- case: destructive-016
drop table public.users cascade;

-- case: destructive-017
drop table public.measurements cascade;

-- case: destructive-018
alter table public.items rename to items_old;
drop table items_old cascade;

-- case: destructive-019
alter table public.events rename to events_archive;
drop table public.events_archive;

-- case: destructive-020
alter table public.staging set schema scratch;
drop table scratch.staging;

-- case: destructive-021
set search_path = scratch;
drop table users;

-- case: destructive-022
select pg_catalog.set_config('search_path', 'scratch', false);
drop table users;

-- case: destructive-023
create table public.events2 (id int);
drop table public.events2, public.events;

-- case: destructive-024
drop materialized view reporting.daily_totals;

-- case: destructive-025
drop materialized view if exists reporting.user_counts;

-- case: destructive-026
drop schema scratch cascade;

-- case: destructive-027
drop schema reporting cascade;

-- case: destructive-028
alter table public.items drop column legacy;

-- case: destructive-029
alter table public.items drop column body;

-- case: destructive-030
alter table items drop column status;

-- case: destructive-031
alter table public.orders drop column ref;

-- case: destructive-032
alter table public.orders drop column state;

-- case: destructive-033
alter table public.events drop column kind;

-- case: destructive-034
alter table events drop column payload;

-- case: destructive-035
alter table public."User" drop column "displayName";

-- case: destructive-036
alter table public.profiles drop column avatar;

-- case: destructive-037
alter table profiles drop column about;

-- case: destructive-038
alter table public.audit_log drop column what;

-- case: destructive-039
alter table public.staging drop column note;

-- case: destructive-040
alter table public.scores drop column contact;

-- case: destructive-041
alter table public.moods drop column m;

-- case: destructive-042
alter table scratch.users drop column email;

-- case: destructive-043
alter table public.items drop column if exists legacy, drop column body;

-- case: destructive-044
alter table public.items add column extra text, drop column legacy;

-- case: destructive-045
truncate public.events;

-- case: destructive-046
truncate events;

-- case: destructive-047
truncate public.staging;

-- case: destructive-048
truncate audit_log;

-- case: destructive-049
truncate public."User" cascade;

-- case: destructive-050
truncate scratch.users;

-- case: destructive-051
truncate public.events, public.staging;

-- case: destructive-052
truncate public.audit_log restart identity;

-- case: destructive-053
truncate only public.profiles;

-- case: destructive-054
truncate table public.moods;

-- case: destructive-055
delete from public.events;

-- case: destructive-056
delete from public.staging;

-- case: destructive-057
delete from audit_log;

-- case: destructive-058
delete from public."User";

-- case: destructive-059
delete from scratch.users;

-- case: destructive-060
delete from public.profiles;

-- case: destructive-061
delete from only public.moods;

-- case: destructive-062
delete from public.events as e using public.staging s;

-- case: destructive-063
update public.items set note = null;

-- case: destructive-064
update public.users set age = 0;

-- case: destructive-065
update public.orders set state = 'closed';

-- case: destructive-066
update events set kind = 'x';

-- case: destructive-067
update public."User" set email = lower(email);

-- case: destructive-068
update public.scores set points = 1;

-- case: destructive-069
update public.profiles set about = '';

-- case: destructive-070
with d as (delete from public.items returning *) select count(*) from d;

-- case: destructive-071
with d as (delete from public.audit_log returning id) insert into public.staging (id) select id from d;

-- case: destructive-072
with u as (update public.users set name = 'x' returning id) select count(*) from u;

-- case: destructive-073
with a as (select 1), d as (delete from public.events returning *) select * from d;

-- case: destructive-074
merge into public.items t using public.staging s on t.id = s.id when matched then delete;

-- case: destructive-075
merge into public.items t using public.staging s on t.id = s.id when matched then update set note = s.note;

-- case: destructive-076
merge into public.users u using (select 1 as id) s on u.id = s.id
  when matched then delete
  when not matched then do nothing;

-- case: destructive-077
drop type mood cascade;

-- case: destructive-078
drop domain positive_int cascade;

-- case: destructive-079
drop domain email_address cascade;

-- case: destructive-080
alter table public.items alter column status type varchar(2) using left(status, 2);

-- case: destructive-081
alter table public.items alter column price type int;

-- case: destructive-082
alter table public.profiles alter column about type int using length(about);

-- case: destructive-083
alter table public.events alter column payload type text;

-- case: destructive-084
drop table public."User" cascade;

-- case: destructive-085
set search_path to scratch, public;
drop table users;

-- case: destructive-086
alter table scratch.users rename to old_users;
drop table scratch.old_users;

-- From an independent review (break-lint): forms the first corpus missed, each label
-- checked by the trace on PostgreSQL 15.

-- case: destructive-087
delete from public.staging where true;

-- case: destructive-088
delete from public.staging where 1 = 1;

-- case: destructive-089
update public.items set note = null where 1=1;

-- case: destructive-090
delete from public.prices where 'yes'::boolean;

-- case: destructive-091
update public.prices set body = '' where true and true;

-- case: destructive-092
do $$ begin
  drop table public.staging;
end $$;

-- case: destructive-093
do $$ begin
  delete from public.staging;
end $$;

-- case: destructive-094
delete from public.staging s using public.items i where true;

-- case: destructive-095
alter table public.items add column flag2 int;
merge into public.items t using public.staging s on t.id = s.id when matched then update set flag2 = 1;

-- case: destructive-096
delete from public.staging where 1 = 1 or id = 5;

-- case: destructive-097 | SQL built at run time
do $$ declare t text := 'staging'; begin execute format('drop table public.%I', t); end $$;

-- case: destructive-098
do $$ begin execute 'truncate ' || 'public.audit_log'; end $$;

-- case: destructive-099
do $$ declare r record; begin
  for r in select 'events' as n loop execute format('delete from public.%I', r.n); end loop;
end $$;

-- case: destructive-100
do $$ declare t text := 'profiles'; begin execute 'alter table public.' || t || ' drop column avatar'; end $$;

-- case: destructive-101
do $$ declare t constant text := 'staging'; begin execute 'truncate public.' || quote_ident(t); end $$;
