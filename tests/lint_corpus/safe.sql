-- Corpus: statements labelled safe. Each case starts at a '-- case:' line; the last statement
-- of a case is the one labelled (earlier ones are its context: the same migration file).

-- case: safe-001
create table public.new_t0 (id bigint generated always as identity primary key, note text);

-- case: safe-002
create table public.new_t1 (id uuid primary key default gen_random_uuid(), created_at timestamptz not null default now());

-- case: safe-003
create table public.new_t2 (id int primary key, user_id int references public.users (id));

-- case: safe-004
create table public.new_t3 (id serial primary key, name text unique);

-- case: safe-005
create table public.new_t4 (like public.items including all);

-- case: safe-006
create table public.new_t5 (id int, m mood, p positive_int);

-- case: safe-007
create table public.new_t6 ("Id" int primary key, "userId" int);

-- case: safe-008
create table if not exists public.events (id int);

-- case: safe-009
create table public.tags (id int primary key, name text);
create index on public.tags (name);

-- case: safe-010
create table public.tags (id int primary key, name text);
alter table public.tags add constraint tag_name unique (name);

-- case: safe-011
create table public.tags (id int primary key, name text);
alter table public.tags alter column name set not null;

-- case: safe-012
create table public.tags (id int, name text);
alter table public.tags add column uid uuid default gen_random_uuid();

-- case: safe-013
create table "Tag" (id int, label text);
create index on "Tag" (label);

-- case: safe-014
create table public.tags (id int);
insert into public.tags values (1);
delete from public.tags;

-- case: safe-015
create table public.tags (id int);
truncate public.tags;

-- case: safe-016
create table public.tags (id int);
drop table public.tags;

-- case: safe-017
create table public.tags (id int);
alter table public.tags rename to labels;
drop table public.labels;

-- case: safe-018
create table scratch.items (id int, note text);
create index on scratch.items (note);

-- case: safe-019
set search_path = scratch;
create table events (id int);
create index on events (id);

-- case: safe-020
create materialized view reporting.new_mv as select 1 as x;

-- case: safe-021
create view public.cheap_items as select * from public.items where price < 10;

-- case: safe-022
create or replace view public.items_v as select id, note from public.items;

-- case: safe-023
alter table public.items add column note2 text;

-- case: safe-024
alter table public.users add column bio2 text;

-- case: safe-025
alter table public.orders add column meta jsonb;

-- case: safe-026
alter table public.events add column flag boolean default false;

-- case: safe-027
alter table public.items add column qty2 int default 0;

-- case: safe-028
alter table public.users add column created timestamptz default now();

-- case: safe-029
alter table public.orders add column at timestamptz not null default current_timestamp;

-- case: safe-030
alter table public.items add column tags text[] default '{}';

-- case: safe-031
alter table public.events add column meta jsonb default '{}'::jsonb;

-- case: safe-032
alter table public."User" add column "isAdmin" boolean not null default false;

-- case: safe-033
alter table scratch.users add column n int;

-- case: safe-034
alter table public.items add column state text default 'draft';

-- case: safe-035
alter table public.orders add column day date default current_date;

-- case: safe-036
alter table public.items add column owner2 int references public.users (id);

-- case: safe-037
alter table public.profiles add column lang text default lower('EN');

-- case: safe-038
alter table public.users add column kind mood default 'ok';

-- case: safe-039
alter table public.items add column if not exists note3 varchar(100);

-- case: safe-040
alter table public.audit_log add column who text default current_user;

-- case: safe-041
alter table public.orders add column cents bigint default 0 not null;

-- case: safe-042
alter table public.events add column score numeric(10,2) default 1.5;

-- case: safe-043
alter table public.items add constraint price_pos check (price >= 0) not valid;

-- case: safe-044
alter table public.orders add constraint total_pos check (total >= 0) not valid;

-- case: safe-045
alter table public.items add constraint items_owner_fk foreign key (owner) references public.users (id) not valid;

-- case: safe-046
alter table public.orders add constraint orders_user_fk foreign key (user_id) references public.users (id) not valid;

-- case: safe-047
alter table public."Post" add constraint post_author foreign key ("authorId") references public."User" (id) not valid;

-- case: safe-048
alter table public.items add constraint items_code_uniq unique using index items_code_key;

-- case: safe-049
alter table public.users add constraint users_email_uniq unique using index users_email_key;

-- case: safe-050
alter table public.items_checked validate constraint note_present;

-- case: safe-051 | needs: catalog
alter table public.items_checked alter column note set not null;

-- case: safe-052
alter table public.items alter column note set default 'x';

-- case: safe-053
alter table public.items alter column status drop default;

-- case: safe-054
alter table public.items alter column created_at drop not null;

-- case: safe-055
alter table public.users alter column age set statistics 500;

-- case: safe-056 | needs: catalog
alter table public.items alter column code type varchar(50);

-- case: safe-057 | needs: catalog
alter table public.items alter column code type text;

-- case: safe-058
alter table public.items owner to current_user;

-- case: safe-061
alter table public.items force row level security;

-- case: safe-062
alter table public.items set (fillfactor = 90);

-- case: safe-063
alter table public.items set (autovacuum_vacuum_scale_factor = 0.01);

-- case: safe-064
alter table public.items rename constraint items_pkey to items_pk;

-- case: safe-065
alter index public.items_note_idx rename to items_note_i;

-- case: safe-066
alter table public.items drop constraint if exists nope;

-- case: safe-067
alter table public.items replica identity full;

-- case: safe-068
alter table public.orders alter column state set storage external;

-- case: safe-069
create policy owner_reads on public.items for select using (owner = 1);

-- case: safe-070
create policy "User can read self" on public."User" for select using (true);

-- case: safe-071
create trigger touch before update on public.events for each row execute function public.touch();

-- case: safe-072
comment on table public.items is 'things';

-- case: safe-073
comment on column public.items.note is 'free text';

-- case: safe-074
grant select on public.items to public;

-- case: safe-075
revoke insert on public.items from public;

-- case: safe-076
create sequence public.order_seq;

-- case: safe-077 | needs: catalog (no column draws from the sequence)
alter sequence public.ticket_seq restart with 100;

-- case: safe-078
create type public.status as enum ('a', 'b');

-- case: safe-079
alter type mood add value 'great';

-- case: safe-081
create schema if not exists archive;

-- case: safe-082
create domain public.short_text as text check (length(value) < 10);

-- case: safe-083
create or replace function public.add1(i int) returns int language sql immutable as $$ select i + 1 $$;

-- case: safe-084
create or replace function public.touch() returns trigger language plpgsql as $$ begin return new; end $$;

-- case: safe-085
insert into public.staging (id, note) values (9999, 'x');

-- case: safe-086
insert into public.users (id, email) values (9999, 'new@x.io') on conflict (id) do nothing;

-- case: safe-087
update public.items set note = 'x' where id = 1;

-- case: safe-088
update public.users set age = age + 1 where id in (1, 2, 3);

-- case: safe-089
delete from public.audit_log where at < now() - interval '90 days';

-- case: safe-090
delete from public.staging where id = 3;

-- case: safe-091
insert into public.staging select id, note from public.items where id < 10;

-- case: safe-092
with x as (select id from public.items where id < 5) update public.items set qty = 0 where id in (select id from x);

-- case: safe-093
with s as (select 1 as id) select * from s;

-- case: safe-094
merge into public.items t using public.staging s on t.id = s.id when not matched then insert (id) values (s.id + 100000);

-- case: safe-095
analyze public.items;

-- case: safe-096
set lock_timeout = '5s';

-- case: safe-097
set statement_timeout = 0;

-- case: safe-098
select set_config('search_path', 'public', false);

-- case: safe-099
set search_path to public, extensions;

-- case: safe-100
select count(*) from public.items;

-- case: safe-101 | needs: catalog (no column draws from the sequence)
select pg_catalog.setval('public.ticket_seq', 10);

-- case: safe-102
drop index public.items_note_idx;

-- case: safe-103
drop index if exists public.nope_idx;

-- case: safe-104
drop trigger if exists nope on public.items;

-- case: safe-105
drop policy if exists nope on public.items;

-- case: safe-106
drop sequence if exists public.nope_seq;

-- case: safe-107
alter table public.items drop constraint items_pkey cascade;

-- case: safe-108 | trace: non-transactional
create index concurrently on public.items (price);

-- case: safe-109 | trace: non-transactional
drop index concurrently public.items_note_idx;

-- case: safe-110 | trace: non-transactional
create unique index concurrently orders_ref_uniq on public.orders (ref);

-- case: safe-112
notify items_changed;

-- case: safe-113
do $$ begin raise notice 'hello'; end $$;

-- case: safe-114
call public.backfill_v2(10);

-- case: safe-115
select public.item_count();

-- case: safe-116 | trace: non-transactional
alter table public.measurements detach partition public.measurements_2024 concurrently;

-- case: safe-117 | trace: non-transactional
vacuum public.items;

-- case: safe-118 | trace: non-transactional
vacuum (full false) public.items;

-- case: safe-119 | trace: non-transactional
vacuum (analyze) public.orders;

-- case: safe-120
alter table public.users add column if not exists nickname text;

-- case: safe-121
alter table public.items alter column note set statistics 100, alter column note set default '';

-- case: safe-122
create table public.measurements_2026 partition of public.measurements for values from ('2026-01-01') to ('2027-01-01');

-- case: safe-123
create table public.m_new (id int, ts date, value numeric);
alter table public.measurements attach partition public.m_new for values from ('2030-01-01') to ('2031-01-01');

-- case: safe-124
alter table public.items add constraint items_owner_fk foreign key (owner) references public.users (id) not valid;
alter table public.items add column note9 text;

-- case: safe-125
alter table public."User" add column "createdAt" timestamptz default now();

-- case: safe-126
alter table public."User" rename constraint "User_pkey" to user_pk;

-- case: safe-127
alter table public.events alter column kind set default 'k';

-- case: safe-128
grant usage on schema reporting to public;

-- case: safe-129
alter default privileges in schema public grant select on tables to public;

-- case: safe-130
create extension if not exists pgcrypto;

-- case: safe-131
alter function public.slugify(text) stable;

-- case: safe-132
alter table public.items alter column note drop default, alter column note set statistics 50;

-- case: safe-133 | trace: non-transactional
reindex table concurrently public.items;

-- case: safe-134 | trace: non-transactional
create index concurrently if not exists i_ev on public.events (at);

-- From an independent review (break-lint): forms the first corpus missed, each label
-- checked by the trace on PostgreSQL 15.

-- case: safe-135
refresh materialized view concurrently reporting.daily_totals;

-- case: safe-136
alter table public.items add column flag boolean;
update public.items set flag = true where id = 5;

-- case: safe-137
alter table public.prices add column flag int;
update public.prices set flag = 1 where id in (1, 2, 3);

-- case: safe-138
alter table public.prices set (fillfactor = 80);
update public.prices set amount = amount + 1 where amount > 0;

-- case: safe-139
alter table public.prices add constraint prices_amount_pos check (amount > 0) not valid;
alter table public.prices add column flag int;

-- case: safe-140
delete from public.prices where false;

-- case: safe-141
alter table public.items add column at2 timestamptz default statement_timestamp();

-- case: safe-142 | needs: catalog
alter table public.items add column slug text default public.slugify('X');

-- case: safe-143
alter table public.items add column z text default current_setting('application_name');

-- case: safe-144
alter table public.prices add column q4 positive_int default 3;

-- case: safe-145
alter table public.prices add constraint prices_pk2 unique using index prices_n_key;

-- case: safe-146 | needs: catalog
alter table public.prices drop constraint prices_pkey;
alter table public.prices add constraint prices_pk primary key using index prices_nn_key;

-- case: safe-147
alter table public.items add column due timestamptz default (now() + interval '7 days');

-- case: safe-148
alter table public.items add column created2 timestamptz not null default timezone('utc'::text, now());

-- case: safe-149
alter table public.items add column j jsonb not null default jsonb_build_object('a', 1);

-- case: safe-150
alter table public.items add column ref3 int references public.users (id) on delete cascade;

-- case: safe-151
alter table public.measurements detach partition public.measurements_2024;

-- case: safe-152
alter table public.items alter column id add generated by default as identity;

-- case: safe-153
alter table public.items alter column note drop not null;

-- case: safe-154
ALTER TABLE "items" ADD COLUMN "x" integer DEFAULT 0 NOT NULL;
ALTER TABLE "items" ALTER COLUMN "x" DROP DEFAULT;

-- case: safe-155
create table public.t2 as select * from public.items;
create index on public.t2 (note);

-- case: safe-156
create table public.items_new (like public.items);
alter table public.items rename to items_old;
alter table public.items_new rename to items;
create index on public.items (note);

-- case: safe-157
create table public.widgets (id int primary key, name text);
create index on public.widgets (name);
alter table public.widgets add constraint widgets_name_key unique (name);
alter table public.widgets alter column name set not null;

-- case: safe-158 | needs: catalog
alter table public.prices alter column amount type numeric(12,2);

-- case: safe-159 | needs: catalog
alter table public.prices alter column amount type numeric;

-- case: safe-160 | needs: catalog
alter table public.prices alter column label type varchar(40);

-- case: safe-161 | needs: catalog
alter table public.prices alter column label type text;

-- case: safe-162 | needs: catalog
alter table public.prices alter column body type varchar;

-- case: safe-163 | needs: catalog
alter table public.prices alter column at3 type timestamp(6);

-- case: safe-164 | needs: catalog
alter table public.prices alter column qty type int;

-- case: safe-165 | needs: catalog
alter table public.prices alter column nn set not null;

-- case: safe-166
alter table public.items set (parallel_workers = 4);

-- case: safe-167 | needs: catalog (no foreign key on either side); after: insert into public.events values (1); select true
alter table public.events disable trigger all;

-- case: safe-168
create trigger touch2 before insert on public.events for each row execute function public.touch();

-- case: safe-170
alter table public.prices cluster on prices_pkey;

-- case: safe-171
create statistics items_stats on owner, status from public.items;

-- case: safe-172
alter table public.prices alter column label set storage main;

-- case: safe-173
create index measurements_ts_idx on only public.measurements (ts);

-- case: safe-174
create table public.measurements_2030 partition of public.measurements for values from ('2030-01-01') to ('2031-01-01');

-- case: safe-175
do $$ begin
  alter table public.prices add constraint prices_amount_pos check (amount > 0) not valid;
exception when duplicate_object then null;
end $$;

-- case: safe-176
do $$ begin
  if not exists (select 1 from pg_type where typname = 'status2') then
    create type status2 as enum ('a', 'b');
  end if;
end $$;

-- case: safe-177
alter table public.items add column kind text default 'plain';

-- case: safe-178
alter table public.items add column u uuid default '00000000-0000-0000-0000-000000000000'::uuid;

-- case: safe-179 | needs: catalog
alter table public.items set tablespace pg_default;

-- case: safe-180 | needs: catalog
alter table public.items set logged;

-- case: safe-181 | needs: catalog
alter table public.items set access method heap;

-- case: safe-182 | needs: catalog
create index if not exists items_note_idx on public.items (note);

-- case: safe-183 | needs: catalog
alter table public.measurements attach partition public.measurements_2023 for values from ('2023-01-01') to ('2024-01-01');

-- case: safe-184 | needs: catalog
alter table public.items alter column code type varchar(30) using code;

-- case: safe-185
alter table public.items add column rng int4range default int4range(1, 10);

-- case: safe-186
delete from public.staging s using public.items i where s.id = i.id and i.id < 0;

-- case: safe-187
create temporary table items (id int);
create index on items (id);

-- case: safe-188
alter table public.items add column flag3 int;
insert into public.items (id, owner) values (999999, 1);

-- case: safe-189
alter table public.profiles add constraint profiles_user_fk foreign key (user_id) references public.users (id) not valid, alter column about set default '';

-- case: safe-190
delete from public.staging where null;

-- case: safe-191
alter table public.items add column flag int;
update public.items set flag = 1 where id = any(array[1,2]);

-- case: safe-192 | needs: catalog
alter table public.measurements attach partition public.measurements_2018 for values from ('2018-01-01') to ('2019-01-01');

-- case: safe-193 | needs: catalog
alter table public.measurements attach partition public.measurements_2019 for values from ('2019-01-01') to ('2020-01-01');

-- case: safe-194 | needs: catalog
alter table public.regions attach partition public.regions_d for values in (1, 2, 3);

-- case: safe-195
alter table public.measurements_2021 validate constraint in_2021;

-- case: safe-196 | needs: catalog
alter table public.measurements attach partition public.measurements_2018 for values from (minvalue) to ('2019-01-01');

-- case: safe-197 | needs: catalog
alter table public.measurements_2017 validate constraint in_2017;
alter table public.measurements attach partition public.measurements_2017 for values from ('2017-01-01') to ('2018-01-01');

-- case: safe-198
do $$ declare t text := 'items'; begin execute format('comment on table public.%I is %L', t, 'x'); end $$;

-- case: safe-199
do $$ begin execute format('create table if not exists public.%I (id int)', 'dyn_new'); end $$;

-- case: safe-200
do $$ declare t text := 'orders'; begin
  execute format('delete from public.%I where id = %s', t, 5);
end $$;

-- case: safe-201
do $$ declare t text := 'items'; begin execute 'alter table public.' || t || ' add column memo text'; end $$;

-- case: safe-202
do $$ declare s text := 'comment on table public.items is ''x'''; begin execute s; end $$;

-- h-lint: the close, safe forms of the new breaking and locking rules (see breaking.sql).

-- case: safe-203
lock table public.items in row exclusive mode;

-- case: safe-204
lock table public.items in access share mode;

-- case: safe-205
lock table public.items in share update exclusive mode;

-- case: safe-206
create table public.fresh_lock (id int);
lock table public.fresh_lock;

-- case: safe-207 | after: select nextval('public.tickets_id_seq') > (select max(id) from public.tickets)
select setval('public.tickets_id_seq', (select max(id) from public.tickets));

-- case: safe-208 | needs: catalog (the restart is above every stored id); after: select nextval('public.tickets_id_seq') > (select max(id) from public.tickets)
alter sequence public.tickets_id_seq restart with 100000;

-- case: safe-209 | after: insert into public.invoices (total) values (1); select true
alter sequence public.tickets_id_seq increment by 2;

-- case: safe-210
create sequence public.fresh_seq;
alter sequence public.fresh_seq restart with 1;

-- case: safe-211 | needs: catalog (the restart is above every stored id); after: insert into public.invoices (total) values (1); select true
alter table public.invoices alter column id restart with 100000;

-- case: safe-212 | after: set local role corpus_reader; select exists (select from public.notes)
create policy notes_read on public.notes for select using (true);
alter table public.notes enable row level security;

-- case: safe-213 | needs: catalog (the policy is the schema's); after: set local role corpus_reader; select exists (select from public.memos)
alter table public.memos enable row level security;

-- case: safe-214
create table public.fresh_rls (id int);
alter table public.fresh_rls enable row level security;

-- case: safe-215 | after: 23503 insert into public.books values (100001, -1)
alter table public.books disable trigger user;

-- case: safe-216 | after: 23503 insert into public.books values (100001, -1)
set session_replication_role = origin;

-- case: safe-217 | after: insert into public.drafts (id) values (1); select true
alter table public.drafts add column title text not null default '';

-- case: safe-218 | after: insert into public.drafts (id) values (1); select true
alter table public.drafts add column title text;

-- case: safe-219 | after: 23503 insert into public.books values (100001, -1)
alter table public.books enable trigger all;
