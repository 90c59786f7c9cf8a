-- Per job: the occurrences of its schedule it does not have (dates and cron rules, as JSON); null for none.
ALTER TABLE jobs ADD COLUMN exclusions jsonb;
