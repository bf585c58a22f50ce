-- Which outbox worker holds a row's lease (a token made at each start of `serve`), so a
-- worker renews exactly the rows it holds while it sends them (a short lease kept alive by
-- a heartbeat: issue 11, failover), and an operator can see who holds what.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
