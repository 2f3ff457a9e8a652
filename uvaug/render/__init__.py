"""Stage 3: render fitted faces at new head poses."""
