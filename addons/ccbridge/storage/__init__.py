"""Storage: SQLModel tables, the content-addressed request layout and the background writer."""
