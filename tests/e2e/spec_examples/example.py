import httpx

BASE_URL = "http://localhost:8000"
TOKEN = "your-jwt-token"

headers = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json"
}

# Create a job
response = httpx.post(
    f"{BASE_URL}/api/jobs",
    headers=headers,
    json={
        "account_id": "account-uuid",
        "name": "Daily Backup",
        "schedule": "0 2 * * *",
        "type": 1
    }
)
job = response.json()
print(f"Created job: {job['id']}")

# Create webhook for job
response = httpx.post(
    f"{BASE_URL}/webhooks",
    headers=headers,
    json={
        "job_id": job["id"],
        "url": "https://api.example.com/webhook",
        "method": "POST",
        "headers": {
            "Authorization": "Bearer api-key"
        },
        "body_template": '{"action": "backup"}'
    }
)
webhook = response.json()
print(f"Created webhook: {webhook['id']}")

# Get job executions
response = httpx.get(
    f"{BASE_URL}/api/jobs/{job['id']}/executions",
    headers=headers
)
executions = response.json()
print(f"Found {executions['total']} executions")
