-- The schema every corpus case runs against: tables that exist before the migration and hold
-- rows (so a scan or a rewrite is observable), in the shapes real projects have.
create schema reporting;
create schema scratch;
create extension if not exists pgcrypto;
create type mood as enum ('ok', 'meh');
create domain positive_int as int;
create domain email_address as text;
create table public.users (id int primary key, email text, name varchar(50), age int, nickname text,
                           bio text, score numeric);
create table public.items (id int primary key, owner int, note text, price numeric, qty int,
                           created_at timestamptz default now(), status text, legacy text, code varchar(20),
                           body text);
create table public.orders (id bigint primary key, user_id int, total numeric, placed_at timestamptz,
                            state text, ref text);
create table public.events (id int, payload jsonb, kind text, at timestamptz);
create table public."User" (id int primary key, email text, "displayName" text);
create table public."Post" (id int primary key, "authorId" int, title text);
create table scratch.users (id int, email text);
create table public.scores (id int primary key, points positive_int, contact email_address);
create table public.moods (id int, m mood);
create table public.staging (id int, note text);
create table public.audit_log (id bigint, at timestamptz, what text);
create table public.measurements (id int, ts date, value numeric) partition by range (ts);
create table public.measurements_2024 partition of public.measurements
    for values from ('2024-01-01') to ('2025-01-01');
create table public.measurements_2025 (id int, ts date, value numeric);
create table public.profiles (id int primary key, user_id int, avatar text, about text);
create table public.items_checked (id int, note text, constraint note_present check (note is not null));
create index items_note_idx on public.items (note);
create unique index items_code_key on public.items (code);
create unique index users_email_key on public.users (email);
create sequence public.ticket_seq;
create view public.items_v as select id, note from public.items;
create view public.active_users as select * from public.users where age > 0;
create materialized view reporting.daily_totals as
    select date_trunc('day', placed_at) as day, sum(total) as total from public.orders group by 1;
create unique index daily_totals_day on reporting.daily_totals (day);
create materialized view reporting.user_counts as select count(*) as n from public.users;
create unique index user_counts_n on reporting.user_counts (n);
create function public.item_count() returns bigint language sql stable as $$ select count(*) from public.items $$;
create function public.purge_old() returns void language sql as $$ delete from public.audit_log where id < 0 $$;
create function public.slugify(t text) returns text language sql immutable as $$ select lower(t) $$;
create procedure public.backfill_v2(batch int) language sql as $$ update public.items set qty = 0 where id < batch $$;
create function public.touch() returns trigger language plpgsql as $$ begin new.at = now(); return new; end $$;
insert into public.users select g, 'u' || g || '@x.io', 'name' || g, g % 90, null, null, g from generate_series(1, 2000) g;
insert into public.items select g, g % 2000 + 1, 'note ' || g, g, g, now(), 'new', 'x', 'c' || g, 'b'
  from generate_series(1, 2000) g;
insert into public.orders select g, g % 2000 + 1, g, now() - g * interval '1 hour', 'open', 'r' || g
  from generate_series(1, 2000) g;
insert into public.events select g, '{}'::jsonb, 'k', now() from generate_series(1, 2000) g;
insert into public."User" select g, 'u' || g || '@x.io', 'U' || g from generate_series(1, 500) g;
insert into public."Post" select g, g % 500 + 1, 't' from generate_series(1, 500) g;
insert into scratch.users select g, 's' || g from generate_series(1, 300) g;
insert into public.scores select g, g, 'a@b.c' from generate_series(1, 1000) g;
insert into public.moods select g, 'ok' from generate_series(1, 500) g;
insert into public.staging select g, 'n' from generate_series(1, 500) g;
insert into public.audit_log select g, now(), 'w' from generate_series(1, 1000) g;
insert into public.measurements select g, date '2024-01-01' + g % 300, g from generate_series(1, 1000) g;
insert into public.measurements_2025 select g, date '2025-01-01' + g % 300, g from generate_series(1, 500) g;
insert into public.profiles select g, g, 'a', 'b' from generate_series(1, 1000) g;
insert into public.items_checked select g, 'n' from generate_series(1, 500) g;
-- Added by an independent review (break-lint): shapes the first corpus did not have.
create domain public.positive_qty as int check (value > 0);          -- a domain with a CHECK
create domain public.short_code as text;                              -- gets a NOT VALID CHECK below
create table public.prices (id int primary key, amount numeric(10,2), label varchar(20), body text,
                            at timestamp, at3 timestamp(3), n int, tz timestamptz, qty public.positive_qty,
                            c char(5), code public.short_code, nn int not null);
create index prices_label_idx on public.prices (label);
create index prices_body_idx on public.prices (body);
create unique index prices_n_key on public.prices (n);                -- n is nullable
create unique index prices_nn_key on public.prices (nn);              -- nn is NOT NULL
create table public.logs (id int, at date) partition by range (at);
create table public.logs_default partition of public.logs default;    -- holds rows
create table public.measurements_2023 (id int, ts date, value numeric,
    constraint in_2023 check (ts is not null and ts >= '2023-01-01' and ts < '2024-01-01'));
insert into public.prices select g, g, 'l' || g, 'b' || g, now(), now(), g, now(), g, 'c', 'k' || g % 7, g
  from generate_series(1, 1000) g;
insert into public.logs select g, date '2020-01-01' + g % 300 from generate_series(1, 1000) g;
insert into public.measurements_2023 select g, date '2023-01-01' + g % 300, g from generate_series(1, 500) g;
alter domain public.short_code add constraint short check (length(value) < 10) not valid;
refresh materialized view reporting.daily_totals;
refresh materialized view reporting.user_counts;
analyze;
-- partitions whose CHECKs do or do not prove a bound (ATTACH PARTITION skips its scan only then)
create table public.measurements_2022 (id int, ts date, value numeric,
    constraint in_2022 check (ts between '2022-01-01' and '2022-12-31'));
create table public.measurements_2021 (id int, ts date, value numeric);
alter table public.measurements_2021 add constraint in_2021 check (ts >= '2021-01-01' and ts < '2022-01-01') not valid;
create table public.measurements_2020 (id int, ts date, value numeric, check (ts >= '2020-01-01' and ts < '2021-06-01'));
create table public.measurements_2019 (id int, ts date not null, value numeric);
alter table public.measurements_2019 add constraint in_2019 check ('2019-01-01' <= ts and ts < '2020-01-01');
create table public.regions (id int, code int) partition by list (code);
create table public.regions_a (id int, code int, constraint a_codes check (code in (1, 2)));
create table public.regions_b (id int, code int, constraint b_codes check (code = any (array[4, 9])));
create table public.regions_c (id int, code int);
insert into public.measurements_2022 select g, date '2022-01-01' + g % 300, g from generate_series(1, 300) g;
insert into public.measurements_2021 select g, date '2021-01-01' + g % 300, g from generate_series(1, 300) g;
insert into public.measurements_2020 select g, date '2020-01-01' + g % 300, g from generate_series(1, 300) g;
insert into public.measurements_2019 select g, date '2019-01-01' + g % 300, g from generate_series(1, 300) g;
insert into public.regions_a select g, 1 + g % 2 from generate_series(1, 300) g;
insert into public.regions_b select g, 4 from generate_series(1, 300) g;
insert into public.regions_c select g, 7 from generate_series(1, 300) g;
create table public.measurements_2018 (id int, ts date not null, value numeric,
    constraint in_2018 check (ts between '2018-01-01' and '2018-12-31'));
create table public.regions_d (id int, code int, constraint d_codes check (code is not null and code in (1, 2)));
create table public.measurements_2017 (id int, ts date, value numeric);
alter table public.measurements_2017 add constraint in_2017
    check (ts is not null and ts >= '2017-01-01' and ts < '2018-01-01') not valid;
insert into public.measurements_2018 select g, date '2018-01-01' + g % 300, g from generate_series(1, 300) g;
insert into public.regions_d select g, 1 + g % 2 from generate_series(1, 300) g;
insert into public.measurements_2017 select g, date '2017-01-01' + g % 300, g from generate_series(1, 300) g;
-- Sequences, row security, foreign keys and an empty table (h-lint): ids a sequence moved back
-- collides with, rows a policy-less ENABLE ROW LEVEL SECURITY hides, keys DISABLE TRIGGER ALL stops.
create table public.tickets (id bigserial primary key, title text);
create table public.invoices (id int generated always as identity primary key, total numeric);
create sequence public.coupon_seq;
create table public.coupons (id int primary key default nextval('public.coupon_seq'), code text);
create table public.notes (id int primary key, body text);
create table public.memos (id int primary key, body text);
create policy memos_read on public.memos for select using (true);
create table public.authors (id int primary key, name text);
create table public.books (id int primary key, author_id int references public.authors (id));
create table public.drafts (id int primary key, note text);                -- exists, holds no row
insert into public.tickets (title) select 't' || g from generate_series(1, 300) g;
insert into public.invoices (total) select g from generate_series(1, 300) g;
insert into public.coupons (code) select 'c' || g from generate_series(1, 200) g;
insert into public.notes select g, 'n' from generate_series(1, 300) g;
insert into public.memos select g, 'm' from generate_series(1, 300) g;
insert into public.authors select g, 'a' || g from generate_series(1, 100) g;
insert into public.books select g, g % 100 + 1 from generate_series(1, 300) g;
