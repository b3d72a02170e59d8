"""Headless analysis of recorded attempts for the instructors' and researchers' reports."""
