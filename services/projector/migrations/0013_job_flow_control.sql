-- Per job: the flow control of its webhook deliveries (key and limits, as JSON); null for none.
ALTER TABLE jobs ADD COLUMN flow_control jsonb;
