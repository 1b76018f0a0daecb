"""Notifications to people (apprise targets), and the reporting that decides what to tell."""
