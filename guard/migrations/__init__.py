"""Migration files, the Supabase history table, the plan and the runner."""
