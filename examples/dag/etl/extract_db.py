"""ETL: query the (in-memory SQLite) operational database and print its rows as JSON."""

import json
import sqlite3

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE sales (id TEXT PRIMARY KEY, amount INTEGER)")
db.executemany("INSERT INTO sales VALUES (?, ?)", [("d1", 5), ("d2", 15), ("d3", 20)])
rows = db.execute("SELECT id, amount FROM sales ORDER BY id").fetchall()
print(json.dumps({"source": "db", "records": [{"id": i, "amount": a} for i, a in rows]}))
