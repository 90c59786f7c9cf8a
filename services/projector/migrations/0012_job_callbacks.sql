-- Per job: where each attempt's outcome and each dead letter are sent (null: nowhere).
ALTER TABLE jobs ADD COLUMN callback_url text, ADD COLUMN failure_callback_url text;
