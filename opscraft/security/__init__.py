"""Passwords, tokens, rate limits, HTTP protections and the secrets vault."""
