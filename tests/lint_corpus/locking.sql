-- Corpus: statements labelled locking. Each case starts at a '-- case:' line; the last statement
-- of a case is the one labelled (earlier ones are its context: the same migration file).

-- case: locking-001
create index on public.items (owner);

-- case: locking-002
create index on public.items (price);

-- case: locking-003
create index on items (status);

-- case: locking-004
create index on public.users (age);

-- case: locking-005
create index on public.users (name);

-- case: locking-006
create index on public.orders (user_id);

-- case: locking-007
create index on public.orders (placed_at);

-- case: locking-008
create index on public.events (kind);

-- case: locking-009
create index on events (at);

-- case: locking-010
create index on public."User" (email);

-- case: locking-011
create index on public."Post" ("authorId");

-- case: locking-012
create index on public.profiles (user_id);

-- case: locking-013
create index on public.scores (points);

-- case: locking-014
create index on public.audit_log (at);

-- case: locking-015
create index on public.staging (note);

-- case: locking-016
create index on scratch.users (email);

-- case: locking-017
create index on public.items (lower(note));

-- case: locking-018
create index on public.orders (state, placed_at);

-- case: locking-019
create unique index orders_ref_key on public.orders (ref);

-- case: locking-020
create index if not exists events_payload on public.events using gin (payload);

-- case: locking-021
create index items_open on public.items (id) where status = 'new';

-- case: locking-022
alter table public.items add column token uuid default gen_random_uuid();

-- case: locking-023
alter table public.users add column token uuid default gen_random_uuid();

-- case: locking-024
alter table public.orders add column seen_at timestamptz default clock_timestamp();

-- case: locking-025
alter table public.events add column r float8 default random();

-- case: locking-026
alter table public.items add column ticket bigint default nextval('ticket_seq');

-- case: locking-027
alter table public.profiles add column n serial;

-- case: locking-028
alter table public.audit_log add column seq bigserial;

-- case: locking-029
alter table public.events add column rid int generated always as identity;

-- case: locking-030
alter table public.items add column total numeric generated always as (price * qty) stored;

-- case: locking-031
alter table public.orders add column k text generated always as (upper(state)) stored;

-- case: locking-032
alter table public.items add column sku text unique;

-- case: locking-033
alter table public.users add column handle text unique;

-- case: locking-034
alter table public.orders add column slug text default md5(random()::text);

-- case: locking-035
alter table public.events add column cid text default gen_random_uuid()::text;

-- case: locking-036
alter table public.items add column nickname text check (nickname <> '');

-- case: locking-037
alter table public.orders add column buyer int default 1 references public.users (id);

-- case: locking-038
alter table public."User" add column uid uuid not null default gen_random_uuid();

-- case: locking-039
alter table scratch.users add column t timestamptz default timeofday()::timestamptz;

-- case: locking-040
alter table public.items add constraint price_pos check (price >= 0);

-- case: locking-041
alter table public.orders add constraint total_pos check (total >= 0);

-- case: locking-042
alter table public.users add constraint age_ok check (age between 0 and 150);

-- case: locking-043
alter table public.events add constraint kind_ok check (kind <> '');

-- case: locking-044
alter table public.items add constraint items_owner_fk foreign key (owner) references public.users (id);

-- case: locking-045
alter table public.orders add constraint orders_user_fk foreign key (user_id) references public.users (id);

-- case: locking-046
alter table public.profiles add constraint profiles_user_fk foreign key (user_id) references public.users (id) on delete cascade;

-- case: locking-047
alter table public."Post" add constraint "Post_authorId_fkey" foreign key ("authorId") references public."User" (id);

-- case: locking-048
alter table public.orders add constraint orders_ref_key unique (ref);

-- case: locking-049
alter table public.events add constraint events_pkey primary key (id);

-- case: locking-050
alter table public.audit_log add constraint audit_pk primary key (id);

-- case: locking-051
alter table public.items add constraint items_note_key unique (note);

-- case: locking-052
alter table public.items alter column note set not null;

-- case: locking-053
alter table public.orders alter column total set not null;

-- case: locking-054
alter table public.events alter column kind set not null;

-- case: locking-055
alter table public.users alter column email set not null;

-- case: locking-056
alter table items alter column status set not null;

-- case: locking-057
alter table public."User" alter column email set not null;

-- case: locking-058
alter table public.profiles alter column avatar set not null;

-- case: locking-059
alter table scratch.users alter column id set not null;

-- case: locking-060
alter table public.items alter column qty type bigint;

-- case: locking-061
alter table public.orders alter column user_id type bigint;

-- case: locking-062
alter table public.events alter column kind type varchar(100);

-- case: locking-063
alter table public.items set unlogged;

-- case: locking-064
alter table public.events set unlogged;

-- case: locking-065
cluster public.items using items_pkey;

-- case: locking-066
cluster public.users using users_pkey;

-- case: locking-067
reindex table public.items;

-- case: locking-068
reindex index public.items_note_idx;

-- case: locking-069
refresh materialized view reporting.daily_totals;

-- case: locking-070
refresh materialized view reporting.user_counts;

-- case: locking-071
alter domain positive_int add constraint positive check (value > 0);

-- case: locking-072
alter domain email_address add constraint has_at check (value like '%@%');

-- case: locking-073
alter domain positive_int set not null;

-- case: locking-074
alter table public.items add constraint items_owner_fk foreign key (owner) references public.users (id) not valid;
alter table public.items validate constraint items_owner_fk;

-- case: locking-075
alter table public.orders add constraint total_pos check (total >= 0) not valid;
alter table public.orders validate constraint total_pos;

-- case: locking-076
alter table public."Post" add constraint post_author foreign key ("authorId") references public."User" (id) not valid;
alter table public."Post" validate constraint post_author;

-- case: locking-077
alter table public.measurements attach partition public.measurements_2025
  for values from ('2025-01-01') to ('2026-01-01');

-- case: locking-078
alter table public.items add column flag boolean default false, alter column note set not null;

-- case: locking-079
alter table public.events add column n int, add constraint n_ok check (id > 0);

-- case: locking-080 | trace: non-transactional
vacuum full public.items;

-- case: locking-081 | trace: non-transactional
vacuum (full, analyze) public.orders;

-- From an independent review (break-lint): forms the first corpus missed, each label
-- checked by the trace on PostgreSQL 15.

-- case: locking-082
alter table public.items add check (price >= 0) not valid;
alter table public.items validate constraint items_price_check;

-- case: locking-083
alter table public.items add column extra int;
alter table public.items add constraint price_nonneg check (price >= 0) not valid;
alter table public.items validate constraint price_nonneg;

-- case: locking-084
alter table public.items add column flag boolean;
update public.items set flag = false where flag is null;

-- case: locking-085
lock table public.items in access exclusive mode;
update public.items set qty = 0 where qty is null;

-- case: locking-086
alter table public.prices add column flag int;
update public.prices set flag = 1 where flag is null;

-- case: locking-087
alter table public.prices alter column label set default 'x';
delete from public.prices where amount > 500;

-- case: locking-088
create index prices_amount_idx on public.prices (amount);
update public.prices set amount = amount + 1 where amount > 0;

-- case: locking-089
lock table public.prices in share mode;
insert into public.staging select id, body from public.prices;

-- case: locking-090
create trigger trg before insert on public.prices for each row execute function public.touch();
update public.prices set amount = 0 where amount < 10;

-- case: locking-091
alter table public.orders add constraint orders_user_fk foreign key (user_id) references public.users (id) not valid;
update public.users set age = 0 where age is null;

-- case: locking-092
alter domain positive_int add constraint pos check (value > 0) not valid;
alter domain positive_int validate constraint pos;

-- case: locking-093
alter domain public.short_code validate constraint short;

-- case: locking-094
refresh materialized view reporting.daily_totals with no data;

-- case: locking-095
create domain public.pos_int as int check (value > 0);
alter table public.items add column p public.pos_int default 1;

-- case: locking-096 | needs: catalog
alter table public.prices add column q public.positive_qty;

-- case: locking-097 | needs: catalog
alter table public.prices add column q2 public.positive_qty default 5;

-- case: locking-098 | needs: catalog
alter table public.prices add column q3 public.short_code;

-- case: locking-099
create unique index events_id_key on public.events (id);
alter table public.events add constraint events_pk primary key using index events_id_key;

-- case: locking-100
alter table public.prices drop constraint prices_pkey;
alter table public.prices add constraint prices_pk primary key using index prices_n_key;

-- case: locking-101
alter table public.prices alter column amount type numeric(12,4);

-- case: locking-102
alter table public.prices alter column amount type numeric(12,1);

-- case: locking-103
alter table public.prices alter column amount type numeric(8,2);

-- case: locking-104
alter table public.prices alter column label type varchar(10);

-- case: locking-105
alter table public.prices alter column body type varchar(255);

-- case: locking-106
alter table public.prices alter column at3 type timestamp(0);

-- case: locking-107
alter table public.prices alter column n type bigint;

-- case: locking-108
alter table public.prices alter column body type text collate "C";

-- case: locking-109
alter table public.prices alter column body type text using body || '';

-- case: locking-110
alter table public.prices alter column n type public.positive_qty;

-- case: locking-111
alter table public.prices alter column c type char(10);

-- case: locking-112
alter table public.prices alter column c type varchar(10);

-- case: locking-113
alter table public.items set unlogged;

-- case: locking-114
cluster public.items using items_pkey;

-- case: locking-115
do $$ begin
  alter table public.items add constraint items_owner_fkey foreign key (owner) references public.users (id);
exception when duplicate_object then null;
end $$;

-- case: locking-116
DO $$ BEGIN
 ALTER TABLE "public"."Post" ADD CONSTRAINT "Post_authorId_User_id_fk" FOREIGN KEY ("authorId") REFERENCES "public"."User"("id") ON DELETE cascade ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;

-- case: locking-117
do $$
begin
  if not exists (select 1 from pg_indexes where indexname = 'items_status_idx') then
    create index items_status_idx on public.items (status);
  end if;
end $$;

-- case: locking-118
do $$ begin execute 'alter table public.items alter column note set not null'; end $$;

-- case: locking-119
do $$
begin
  alter table public.prices add column v text;
  update public.prices set v = label where v is null;
end $$;

-- case: locking-120 | needs: catalog
create table public.logs_2026 partition of public.logs for values from ('2026-01-01') to ('2027-01-01');

-- case: locking-121 | needs: catalog
create table public.logs_2027 (id int, at date);
alter table public.logs attach partition public.logs_2027 for values from ('2027-01-01') to ('2028-01-01');

-- case: locking-122
do $$ begin
  execute format('create index on %I.%I (amount)', 'public', 'prices');
end $$;

-- case: locking-123
alter table public.items add column flag boolean;
with u as (update public.items set flag = true where flag is null returning id) select count(*) from u;

-- case: locking-124
alter table public.items add column total numeric;
update public.items i set total = o.total from public.orders o where o.id = i.id;

-- case: locking-125
set search_path = reporting;
refresh materialized view daily_totals;

-- case: locking-126
alter table public.profiles alter column user_id set not null, add constraint profiles_user_fk foreign key (user_id) references public.users (id) not valid;

-- case: locking-127
alter table public.measurements add column tag text default gen_random_uuid()::text;

-- case: locking-128
do $$ begin execute 'do $x$ begin alter table public.items alter column note set not null; end $x$'; end $$;

-- case: locking-129
lock table only public.items in exclusive mode nowait;
update public.items set qty = 0 where qty < 0;

-- case: locking-131
alter table public.measurements attach partition public.measurements_2021 for values from ('2021-01-01') to ('2022-01-01');

-- case: locking-132
alter table public.measurements attach partition public.measurements_2020 for values from ('2020-01-01') to ('2021-01-01');

-- case: locking-133
alter table public.regions attach partition public.regions_b for values in (4, 5);

-- case: locking-134
alter table public.regions attach partition public.regions_c for values in (7);

-- case: locking-135
alter table public.measurements attach partition public.measurements_2022 for values from ('2021-06-01') to ('2022-12-31');


-- case: locking-136 | the CHECK lacks IS NOT NULL: PostgreSQL's proof is weak implication
alter table public.measurements attach partition public.measurements_2022 for values from ('2022-01-01') to ('2023-01-01');

-- case: locking-137 | the CHECK lacks IS NOT NULL: PostgreSQL's proof is weak implication
alter table public.regions attach partition public.regions_a for values in (1, 2, 3);

-- case: locking-138 | the CHECK lacks IS NOT NULL: PostgreSQL's proof is weak implication
alter table public.regions attach partition public.regions_b for values in (4, 9);

-- case: locking-139 | the CHECK lacks IS NOT NULL: PostgreSQL's proof is weak implication
alter table public.measurements attach partition public.measurements_2022 for values from (minvalue) to ('2023-01-01');

-- case: locking-140 | the CHECK lacks IS NOT NULL: PostgreSQL's proof is weak implication
alter table public.measurements_2021 validate constraint in_2021;
alter table public.measurements attach partition public.measurements_2021 for values from ('2021-01-01') to ('2022-01-01');

-- case: locking-141 | SQL built at run time: a non-constant format() argument
do $$ declare t text := 'orders'; begin execute format('create index on public.%I (state)', t); end $$;

-- case: locking-142
do $$ begin execute 'alter table public.orders add column k uuid default ' || 'gen_random_uuid()'; end $$;

-- case: locking-143
do $$ declare c text := 'ref'; begin
  execute 'ALTER TABLE public.orders ALTER COLUMN ' || quote_ident(c) || ' SET NOT NULL';
end $$;

-- case: locking-144
do $$ begin execute format('alter table %I.%I add constraint pos check (%I > 0)', 'public', 'orders', 'total'); end $$;

-- case: locking-145
-- EXECUTE of a variable declared with a constant (b4-lint: read as that constant)
do $$ declare s text := 'create index on public.items (qty)'; begin execute s; end $$;

-- case: locking-146
do $$ begin execute concat_ws(' ', 'alter table public.orders', 'add constraint pos2 check (id > 0)'); end $$;

-- case: locking-147
do $$ declare c constant text := 'id'; begin execute 'create index on public.profiles (' || quote_ident(c) || ')'; end $$;

-- An explicit LOCK in SHARE mode or stronger (h-lint): no scan, but the lock blocks writes (ACCESS
-- EXCLUSIVE: reads too) until the file's transaction ends. `trace: lock held` confirms the lock the
-- transaction holds after the statement instead of a scan.

-- case: locking-148 | trace: lock held
lock table public.items in access exclusive mode;

-- case: locking-149 | trace: lock held
lock public.orders;

-- case: locking-150 | trace: lock held
lock table only public.users, public.profiles in share mode nowait;

-- case: locking-151 | trace: lock held
lock table public.events in exclusive mode;

-- case: locking-152 | trace: lock held
lock table public.staging in share row exclusive mode;

-- case: locking-153 | trace: lock held
create table public.fresh_lock (id int);
lock table public.fresh_lock, public.audit_log in access exclusive mode;

-- ADD COLUMN NOT NULL without a DEFAULT (h-lint): fails on a table holding rows; on this empty one it
-- checks every row under ACCESS EXCLUSIVE, and INSERTs not naming the column fail after.

-- case: locking-154 | after: 23502 insert into public.drafts (id) values (1)
alter table public.drafts add column title text not null;

-- case: locking-155 | after: 23502 insert into public.drafts (id) values (1)
alter table public.drafts add column kind int not null check (kind > 0);

-- case: locking-156 | was safe-111, relabelled by h-lint; trace: lock held
lock table public.staging in share mode;

-- case: locking-157 | was safe-169, relabelled by h-lint; trace: lock held
lock table public.items in access exclusive mode;

-- case: locking-158 | after: 23502 insert into public.drafts (id) values (1)
alter table public.drafts add column kind2 text default null not null;
