"""Accounts, sign-in sessions, projects and the audit events."""
