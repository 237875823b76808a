"""Connections to the outside: publishers of price changes (files now, shop platforms next)."""
