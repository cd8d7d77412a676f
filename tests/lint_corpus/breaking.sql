-- Corpus: statements labelled breaking. Each case starts at a '-- case:' line; the last statement
-- of a case is the one labelled (earlier ones are its context: the same migration file).

-- case: breaking-001
alter table public.items rename column note to remark;

-- case: breaking-002
alter table public.users rename column name to full_name;

-- case: breaking-003
alter table public.orders rename column total to amount;

-- case: breaking-004
alter table public."User" rename column "displayName" to display_name;

-- case: breaking-005
alter table events rename column kind to type;

-- case: breaking-006
alter table public.profiles rename column about to bio;

-- case: breaking-007
alter table public.events rename to event_log;

-- case: breaking-008
alter table public.staging rename to staging_rows;

-- case: breaking-009
alter table public."Post" rename to posts;

-- case: breaking-010
alter table scratch.users rename to people;

-- case: breaking-011
alter view public.items_v rename to items_view;

-- case: breaking-012
alter materialized view reporting.user_counts rename to user_totals;

-- case: breaking-013
alter table public.audit_log set schema scratch;

-- case: breaking-014
drop view public.items_v;

-- case: breaking-015
drop view if exists public.active_users;

-- case: breaking-016
drop function public.item_count();

-- case: breaking-017
drop function public.slugify(text);

-- case: breaking-018
drop procedure public.backfill_v2(int);

-- case: breaking-019
drop function if exists public.purge_old;

-- case: breaking-020
alter table public.items rename column code to sku;

-- From an independent review (break-lint): forms the first corpus missed, each label
-- checked by the trace on PostgreSQL 15.

-- case: breaking-021
alter function public.slugify(text) rename to slug;

-- case: breaking-022
alter schema reporting rename to rpt;

-- case: breaking-023
alter type mood rename to feeling;

-- case: breaking-024
alter procedure public.backfill_v2(int) rename to backfill;

-- case: breaking-025
alter view public.items_v rename column note to remark;

-- case: breaking-026
-- every stored 'ok' now reads 'fine'; code writing 'ok' fails (b4-lint: was unflagged)
alter type mood rename value 'ok' to 'fine';

-- case: breaking-027
-- was safe-080: no lock, no rewrite, but clients writing or comparing 'meh' now fail (relabelled by b4-lint)
alter type mood rename value 'meh' to 'so-so';

-- h-lint: sequences moved back (ids collide), row security without a policy (rows hidden),
-- foreign keys no longer enforced, a required column. `after:` is checked in the case's
-- transaction after its statements: it must return true, or (a SQLSTATE first) fail with it.

-- case: breaking-028 | after: select nextval('public.tickets_id_seq') <= (select max(id) from public.tickets)
alter sequence public.tickets_id_seq restart;

-- case: breaking-029 | after: select nextval('public.tickets_id_seq') <= (select max(id) from public.tickets)
alter sequence public.tickets_id_seq restart with 1;

-- case: breaking-030 | after: select nextval('public.tickets_id_seq') <= (select max(id) from public.tickets)
select setval('public.tickets_id_seq', 1);

-- case: breaking-031 | after: 23505 insert into public.coupons (code) values ('x')
select pg_catalog.setval('public.coupon_seq'::regclass, 5, false);

-- case: breaking-032 | after: 23505 insert into public.coupons (code) values ('x')
alter sequence public.coupon_seq restart with 10;

-- case: breaking-033 | after: 23505 insert into public.invoices (total) values (1)
alter table public.invoices alter column id restart with 1;

-- case: breaking-034 | after: 23505 insert into public.invoices (total) values (1)
alter table public.invoices alter column id restart;

-- case: breaking-035 | after: set local role corpus_reader; select not exists (select from public.notes)
alter table public.notes enable row level security;

-- case: breaking-036 | after: set local role corpus_reader; select not exists (select from public.items)
alter table items enable row level security;

-- case: breaking-037 | after: insert into public.books values (100001, -1); select true
alter table public.books disable trigger all;

-- case: breaking-038 | after: delete from public.authors where id = 1; select exists (select from public.books where author_id = 1)
alter table public.authors disable trigger all;

-- case: breaking-039 | after: insert into public.books values (100001, -1); select true
set session_replication_role = replica;

-- case: breaking-040 | after: insert into public.books values (100001, -1); select true
set local session_replication_role to 'replica';

-- case: breaking-041 | after: insert into public.books values (100001, -1); select true
select set_config('session_replication_role', 'replica', true);

-- case: breaking-042 | after: set local role corpus_reader; select not exists (select from public.notes)
do $$ begin alter table public.notes enable row level security; end $$;

-- case: breaking-043 | was safe-059, relabelled by h-lint; after: set local role corpus_reader; select not exists (select from public.items)
alter table public.items enable row level security;

-- case: breaking-044 | was safe-060, relabelled by h-lint; after: set local role corpus_reader; select not exists (select from public."User")
alter table public."User" enable row level security;
