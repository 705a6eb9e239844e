"""A conversation as the official openai Python SDK sends it: every turn
resends the ones before (e2e/conversation_test.go).

Usage: conversation.py BASE_URL API_KEY MODE. MODE "chat" sends three turns
of one conversation, then twice a conversation whose first turn holds a
credential; "last" sends only the third turn of the first conversation.
Prints one JSON list: per request its status, and the routing object's
personal data, secrets and sensitivity, or the error's class and code.
"""
import json
import sys

import openai

base_url, api_key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
notes = " ".join(["The shipment left the warehouse on Monday and the carrier confirmed the pickup."] * 4)
turns = [
    {"role": "user", "content": "Please draft a reply to maria.rossi@example.com about her delayed order. " + notes},
    {"role": "assistant", "content": "Here is a draft that apologises for the delay and offers a discount. " + notes},
    {"role": "user", "content": "Make it shorter and mention the new delivery date. " + notes},
    {"role": "assistant", "content": "Shorter draft: the order arrives on Friday; sorry for the wait. " + notes},
    {"role": "user", "content": "Good. Now translate it into Italian."},
]
leaked = [
    {"role": "user", "content": "Our deploy fails; the config has AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE in it. " + notes},
    {"role": "assistant", "content": "Please do not paste credentials here; rotate that key first. " + notes},
    {"role": "user", "content": "Done. What else could it be?"},
]
out = []


def send(messages):
    try:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        routing = (raw.parse().model_extra or {}).get("routing", {})
        out.append({"status": raw.status_code, "pii": routing.get("pii"), "secrets": routing.get("secrets"),
                    "sensitivity": routing.get("sensitivity")})
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out.append({"status": e.status_code, "class": type(e).__name__, "code": body.get("code")})


if mode == "chat":
    for n in (1, 3, 5):
        send(turns[:n])
    send(leaked)
    send(leaked)
else:
    send(turns[:5])
print(json.dumps(out))
