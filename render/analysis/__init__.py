"""Analysis of accepted records; each heavy library is confined to one module here."""
