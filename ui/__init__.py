"""Streamlit helpers shared by app.py and the pages (sign-in guard, project picker, job panel)."""
