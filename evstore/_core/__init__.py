"""The core model, shared by every layer: statuses and their states, events, the record codec,
input checks, times and the error hierarchy. Imports no other evstore layer."""
