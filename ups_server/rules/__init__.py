"""Rules: YAML rule files -> on_store (instance -> workitems) and on_completed (reads -> arbitration)."""
