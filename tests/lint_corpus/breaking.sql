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
