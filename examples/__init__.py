"""Examples of bringing your own task (see README "Bring your own task")."""
