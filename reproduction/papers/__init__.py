"""Each paper's claims: a module per paper with NAME, TITLE, CITATION, GRIDS (the grids the
claims read, in the order reproduce.py runs them), CLAIMS (reproduction.claims.Claim list) and
NOTES (lines for the report)."""
from reproduction.papers import dang2023, dang2024, hong2023, zhou2022

PAPERS = {module.NAME: module for module in (zhou2022, dang2023, dang2024, hong2023)}
