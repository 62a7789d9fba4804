"""A minimal OpenAI-compatible chat-completions server over a :class:`LocalGenerator`.

Lets synthesis (or any OpenAI client) use a local model over HTTP: ``llembed serve-generator``. One request
generates at a time (the model is not thread-safe); requests queue.
"""

from __future__ import annotations

import threading
import time
import uuid

from pydantic import BaseModel, Field

from llembed.generation import GenerationSettings, LocalGenerator


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)


def create_chat_app(generator: LocalGenerator, served_name: str | None = None):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    name = served_name or generator.name
    lock = threading.Lock()
    app = FastAPI(title="llembed generator")

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "llembed"}]}

    @app.post("/v1/chat/completions")
    def complete(request: ChatRequest):
        if request.model not in (None, name):
            return JSONResponse(
                status_code=404,
                content={
                    "error": {
                        "message": f"model {request.model!r} not served here (serving {name!r})",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
        settings = GenerationSettings(request.max_tokens or 256, request.temperature, request.top_p)
        messages = [m.model_dump() for m in request.messages]
        with lock:
            text = generator.chat([messages], settings)[0]
        prompt_tokens = len(generator.tokenizer.apply_chat_template(messages, tokenize=True))
        completion_tokens = len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return app
