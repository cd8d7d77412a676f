"""`guard undo`: put the database back as it was before a guarded run, by the most precise
path that exists, and say which.

1. The local inverse (guard/undo/plan.py) from the catalogs the run recorded and its
   protective copies, in one transaction (guard/undo/local.py).
2. Supabase's undo to the restore point the run created, or 3. point-in-time recovery to the
   run's restore target (guard/undo/supabase.py): only when nothing can be inverted locally or
   with ``--whole-database``, and always with ``--confirm <project-ref>``.
4. Otherwise refuse (exit 3) with the manual plan.

Without ``yes`` nothing changes: the result lists what would happen.

The options and the result are in guard/undo/result.py: a guarded run records its catalogs
through guard/undo/catalog.py and has no use for them.
"""
