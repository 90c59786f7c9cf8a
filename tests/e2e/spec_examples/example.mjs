const BASE_URL = 'http://localhost:8000';
const TOKEN = 'your-jwt-token';

const headers = {
  'Authorization': `Bearer ${TOKEN}`,
  'Content-Type': 'application/json'
};

// Create a job
const jobResponse = await fetch(`${BASE_URL}/api/jobs`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    account_id: 'account-uuid',
    name: 'Daily Backup',
    schedule: '0 2 * * *',
    type: 1
  })
});
const job = await jobResponse.json();
console.log(`Created job: ${job.id}`);

// Create webhook for job
const webhookResponse = await fetch(`${BASE_URL}/webhooks`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    job_id: job.id,
    url: 'https://api.example.com/webhook',
    method: 'POST',
    headers: {
      'Authorization': 'Bearer api-key'
    },
    body_template: JSON.stringify({ action: 'backup' })
  })
});
const webhook = await webhookResponse.json();
console.log(`Created webhook: ${webhook.id}`);

// Get job executions
const executionsResponse = await fetch(
  `${BASE_URL}/api/jobs/${job.id}/executions`,
  { headers }
);
const executions = await executionsResponse.json();
console.log(`Found ${executions.total} executions`);
