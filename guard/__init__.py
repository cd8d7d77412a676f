"""migration-guard: a pre-migration guard for PostgreSQL and Supabase."""

__version__ = "0.1.0"
