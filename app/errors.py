"""One error type for the whole API, and the handlers that render it as JSON.

Every failure a client can see has a stable machine `code`, an English `message`
and a Chinese `message_zh`, so the mini-app can show the right text and
integrations can branch on the code.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException


class AppError(Exception):
    """A business or request error with a stable code and bilingual messages."""

    def __init__(
        self,
        code: str,
        message: str,
        message_zh: str,
        status: int = 400,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_zh = message_zh
        self.status = status
        self.details = details
        # Set when the refusal must still commit what was recorded (e.g. a failed-login audit row).
        self.keep_changes = False

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh,
        }
        if self.details:
            body["details"] = self.details
        return {"error": body}


# Generic HTTP statuses, for errors raised by Flask/werkzeug rather than by us.
_HTTP_MESSAGES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "The request is malformed.", "请求格式错误。"),
    401: ("unauthorized", "Authentication is required.", "需要登录认证。"),
    403: ("forbidden", "You are not allowed to do this.", "无权执行此操作。"),
    404: ("not_found", "Not found.", "未找到。"),
    405: ("method_not_allowed", "Method not allowed.", "不支持该请求方法。"),
    406: ("not_acceptable", "Not acceptable.", "无法提供所需格式。"),
    409: ("conflict", "Conflict with the current state.", "与当前状态冲突。"),
    413: ("payload_too_large", "The request body is too large.", "请求体过大。"),
    415: (
        "unsupported_media_type",
        "Send JSON (Content-Type: application/json).",
        "请以 JSON 格式提交（Content-Type: application/json）。",
    ),
    422: ("validation_error", "The request could not be processed.", "请求内容无法处理。"),
    429: ("rate_limited", "Too many requests; slow down.", "请求过于频繁，请稍后再试。"),
    500: ("internal_error", "Something went wrong on our side.", "服务器内部错误。"),
}


def http_error(status: int) -> AppError:
    code, message, message_zh = _HTTP_MESSAGES.get(status, _HTTP_MESSAGES[500])
    return AppError(code, message, message_zh, status)


def validation_error(messages: Any) -> AppError:
    return AppError(
        "validation_error",
        "Some fields are missing or invalid.",
        "部分字段缺失或无效。",
        400,
        details={"fields": messages},
    )


def not_found(what: str = "resource", what_zh: str = "资源") -> AppError:
    return AppError("not_found", f"The {what} was not found.", f"未找到该{what_zh}。", 404)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(err: AppError):  # type: ignore[no-untyped-def]
        if err.keep_changes:
            g.commit_on_error = True
        response = jsonify(err.to_dict())
        response.status_code = err.status
        if err.status == 401 and not request.path.startswith("/api/v1/partner/"):
            response.headers["WWW-Authenticate"] = "Bearer"  # partners sign requests instead
        return response

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):  # type: ignore[no-untyped-def]
        status = err.code or 500
        # webargs/flask-smorest attach marshmallow messages on 422; we answer 400.
        data = getattr(err, "data", None)
        if data and "messages" in data:
            error = validation_error(data["messages"])
        elif status == 429:
            error = http_error(429)
        else:
            error = http_error(status)
        response = jsonify(error.to_dict())
        response.status_code = error.status
        if err.response is None and hasattr(err, "get_headers"):
            for name, value in err.get_headers():
                if name.lower() not in ("content-type", "content-length"):
                    response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error: %s", type(err).__name__)
        response = jsonify(http_error(500).to_dict())
        response.status_code = 500
        return response


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine code, e.g. insufficient_points."})
    message = fields.String(required=True)
    message_zh = fields.String(required=True)
    details = fields.Dict(metadata={"description": "More about the error, e.g. `fields` for a validation error."})


class ErrorSchema(Schema):
    """The one error body, documented as every operation's error response (flask-smorest's ERROR_SCHEMA)."""

    error = fields.Nested(ErrorDetailSchema, required=True)
