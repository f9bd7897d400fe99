"""Authentication: logins, sessions, API tokens and login throttling."""
