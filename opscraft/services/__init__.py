"""Business rules: the only place that decides who may do what. UI and API both call in here."""
