"""Golden histories: exported runs every later version of durable must still replay."""
