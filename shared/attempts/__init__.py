"""One runtime for attempts of webhooks and tasks alike: an executor per kind runs the attempt, the runtime records
it (started, result, failure and what follows it) through one recorder, the only place attempt events leave."""
