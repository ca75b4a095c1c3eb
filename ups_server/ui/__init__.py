"""The reading page: static HTML, CSS and JavaScript modules served at /ui/ (web/ui.py)."""
