"""The survey page a customer opens: plain HTML, no script, every customer-supplied text escaped.

Mobile-friendly (viewport, large targets), accessible (a fieldset with a legend, one label per
radio button, keyboard-operable native controls), in the request's language.
"""

from __future__ import annotations

from html import escape
from typing import Any

from shared.contract.enums import Language

TEXT: dict[Language, dict[str, Any]] = {
    Language.zh: {
        "title": "服务满意度评价", "intro": "您好{name}，感谢您联系我们。关于您的请求：",
        "question": "您对本次服务满意吗？（1 = 非常不满意，5 = 非常满意）",
        "labels": {1: "1 非常不满意", 2: "2 不满意", 3: "3 一般", 4: "4 满意", 5: "5 非常满意"},
        "reasons": "如果不满意，原因是（可多选）：", "comment": "其他意见（可选）", "submit": "提交评价",
        "thanks": "感谢您的评价！", "thanks_low": "感谢您的反馈，我们会重新处理您的问题并尽快与您联系。",
        "answered": "这份问卷已经提交过了，感谢您的评价。", "expired": "这份问卷已过期。",
        "invalid": "请选择 1 到 5 分。", "ref": "编号",
    },
    Language.en: {
        "title": "How did we do?", "intro": "Hello{name}, thank you for contacting us. About your request:",
        "question": "How satisfied are you with our service? (1 = very dissatisfied, 5 = very satisfied)",
        "labels": {1: "1 Very dissatisfied", 2: "2 Dissatisfied", 3: "3 Neutral", 4: "4 Satisfied",
                   5: "5 Very satisfied"},
        "reasons": "If you were not satisfied, why? (choose any)", "comment": "Anything else? (optional)",
        "submit": "Send", "thanks": "Thank you for your feedback!",
        "thanks_low": "Thank you. We will take up your request again and contact you soon.",
        "answered": "This survey has already been answered. Thank you.", "expired": "This survey has expired.",
        "invalid": "Please choose a rating from 1 to 5.", "ref": "Ref",
    },
}

STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;padding:1rem;
color:#1a1a1a;background:#f6f7f9;line-height:1.5}
main{max-width:34rem;margin:0 auto;background:#fff;border-radius:.5rem;padding:1.25rem}
h1{font-size:1.4rem;margin-top:0}
fieldset{border:0;padding:0;margin:1rem 0}
legend{font-weight:600;margin-bottom:.5rem}
.rating label{display:block;padding:.75rem;margin:.25rem 0;border:1px solid #c9ced6;border-radius:.4rem}
.rating input{margin-right:.6rem;transform:scale(1.3)}
label.check{display:block;padding:.35rem 0}
textarea{width:100%;min-height:5rem;font:inherit;box-sizing:border-box}
button{font:inherit;font-size:1.1rem;padding:.75rem 1.5rem;border:0;border-radius:.4rem;background:#0a5bd3;color:#fff}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
blockquote{margin:.5rem 0;padding:.5rem .75rem;background:#f0f2f5;border-radius:.3rem;white-space:pre-wrap}
.error{color:#b00020;font-weight:600}
"""


def _page(language: Language, body: str) -> str:
    lang = "zh-CN" if language is Language.zh else "en"
    t = TEXT[language]
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(t['title'])}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def survey_form(*, language: Language, survey_id: str, token: str, customer_name: str | None, ref: str,
                summary: str, reasons: list[str], error: str | None = None) -> str:
    t = TEXT[language]
    name = f" {customer_name}" if customer_name else ""
    options = "".join(
        f'<label for="r{n}"><input type="radio" id="r{n}" name="rating" value="{n}" required>'
        f"{escape(t['labels'][n])}</label>"
        for n in range(1, 6)
    )
    checks = "".join(
        f'<label class="check" for="why{i}"><input type="checkbox" id="why{i}" name="reasons" '
        f'value="{escape(reason, quote=True)}"> {escape(reason)}</label>'
        for i, reason in enumerate(reasons)
    )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f"<h1>{escape(t['title'])}</h1>"
        f"<p>{escape(t['intro'].format(name=name))}</p>"
        f"<p>{escape(t['ref'])} {escape(ref)}</p><blockquote>{escape(summary)}</blockquote>{problem}"
        f'<form method="post" action="/v1/surveys/{escape(survey_id, quote=True)}">'
        f'<input type="hidden" name="t" value="{escape(token, quote=True)}">'
        f'<fieldset class="rating"><legend>{escape(t["question"])}</legend>{options}</fieldset>'
        f'<fieldset><legend>{escape(t["reasons"])}</legend>{checks}</fieldset>'
        f'<p><label for="comment">{escape(t["comment"])}</label>'
        f'<textarea id="comment" name="comment" maxlength="2000"></textarea></p>'
        f'<button type="submit">{escape(t["submit"])}</button></form>'
    )
    return _page(language, body)


def message_page(language: Language, key: str) -> str:
    t = TEXT[language]
    return _page(language, f"<h1>{escape(t['title'])}</h1><p role=\"status\">{escape(t[key])}</p>")


# No script may run, no form may post elsewhere, no resource may load from anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
