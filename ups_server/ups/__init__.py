"""The UPS domain (PS3.4 Annex CC): state machine, attribute rules, search, claim."""
