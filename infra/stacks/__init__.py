"""One stack per mlship path; see infra/app.py for how they are wired."""
