# Set variables
TOKEN="your-jwt-token"
BASE_URL="http://localhost:8000"

# Create job
JOB_ID=$(curl -s -X POST "$BASE_URL/api/jobs" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "account_id": "account-uuid",
    "name": "Daily Backup",
    "schedule": "0 2 * * *",
    "type": 1
  }' | jq -r '.id')

echo "Created job: $JOB_ID"

# Create webhook
WEBHOOK_ID=$(curl -s -X POST "$BASE_URL/webhooks" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d "{
    \"job_id\": \"$JOB_ID\",
    \"url\": \"https://api.example.com/webhook\",
    \"method\": \"POST\",
    \"body_template\": \"{\\\"action\\\": \\\"backup\\\"}\"
  }" | jq -r '.id')

echo "Created webhook: $WEBHOOK_ID"

# Get executions
curl -s "$BASE_URL/api/jobs/$JOB_ID/executions" \
  -H "Authorization: Bearer $TOKEN" | jq
