"""Staff accounts: operators, reviewers and administrators of the platform (issue 3 §1, issue 5)."""
