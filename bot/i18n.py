"""What the bot says, in English and Chinese, and how it picks the language for a user.

Every string here is already HTML (the bot sends everything in HTML parse mode), so any
literal ``<``, ``>`` or ``&`` is written escaped. Placeholders are filled with
:func:`text`, which escapes the values it is given.
"""

from __future__ import annotations

import html
from typing import Literal

from corpus.language import detect_language

Lang = Literal["en", "zh"]

_STRINGS: dict[str, dict[Lang, str]] = {
    "help": {
        "en": (
            "<b>I answer questions about {articles} articles</b> (in English and Chinese) "
            "with the passage that answers them, the best-matching sentence in bold, and "
            "where it comes from: article, publisher, date and paragraph.\n\n"
            "<b>Ask</b>: just send me a question, in English or 中文.\n"
            "/sources – the articles I know\n"
            "/help – this message\n\n"
            "<b>In groups</b>: ask with <code>/ask your question</code>, mention me "
            "({mention} your question), or reply to one of my messages. "
            "I stay quiet otherwise."
        ),
        "zh": (
            "<b>我可以根据 {articles} 篇文章回答问题</b>（中英文皆可），给出回答问题的段落、"
            "加粗最相关的句子，并注明出处：文章、发布者、日期和段落。\n\n"
            "<b>提问</b>：直接发送问题即可，中文或英文都行。\n"
            "/sources – 我所知道的文章\n"
            "/help – 显示本说明\n\n"
            "<b>在群组中</b>：用 <code>/ask 你的问题</code> 提问、@我（{mention} 你的问题），"
            "或回复我的消息。其他消息我不会回应。"
        ),
    },
    "ask_usage": {
        "en": "Put your question after the command, e.g. <code>/ask your question</code>.",
        "zh": "请在命令后面写上问题，例如 <code>/ask 你的问题</code>。",
    },
    "empty": {
        "en": "Please send me a question as text.",
        "zh": "请用文字发送你的问题。",
    },
    "too_long": {
        "en": (
            "That is {length} characters long. Please keep questions under {limit} "
            "characters: one question at a time works best."
        ),
        "zh": (
            "这条消息有 {length} 个字符。请把问题控制在 {limit} 个字符以内，"
            "一次问一个问题效果最好。"
        ),
    },
    "not_text": {
        "en": "I can only read text. Please type your question.",
        "zh": "我只能读懂文字，请直接输入你的问题。",
    },
    "unknown_command": {
        "en": "I don't know that command. Send /help to see what I can do.",
        "zh": "我不认识这个命令。发送 /help 查看我能做什么。",
    },
    "no_match": {
        "en": (
            "The articles don't cover this: nothing in them answers it well enough. Try "
            "other words, or see /sources for what they cover."
        ),
        "zh": "文章里没有涉及这个问题，找不到足够可靠的答案。请换个说法，或发送 /sources 查看文章涵盖的内容。",
    },
    "nearest": {"en": "Closest articles:", "zh": "最接近的文章："},
    "also": {"en": "Also in the articles", "zh": "其他文章也提到"},
    "page_header": {
        "en": "Results {first}–{last} of {total}",
        "zh": "第 {first}–{last} 条结果（共 {total} 条）",
    },
    "paragraph": {"en": "¶ {number}", "zh": "第 {number} 段"},
    "more_button": {"en": "More ›", "zh": "更多 ›"},
    "back_button": {"en": "‹ Back", "zh": "‹ 返回"},
    "sources_header": {
        "en": "<b>Indexed articles: {count}</b>",
        "zh": "<b>已索引的文章：{count} 篇</b>",
    },
    "no_sources": {"en": "No articles are indexed yet.", "zh": "目前还没有索引任何文章。"},
    "expired": {
        "en": "These results have expired. Please ask the question again.",
        "zh": "这些结果已过期，请重新提问。",
    },
    "foreign_button": {
        "en": "This button belongs to an answer in another chat.",
        "zh": "这个按钮属于另一个聊天中的回答。",
    },
    "stale": {
        "en": "The articles were re-indexed since this answer. Please ask the question again.",
        "zh": "此回答之后文章已重新索引，请重新提问。",
    },
    "error": {
        "en": "Sorry, something went wrong on my side. Please try again in a moment.",
        "zh": "抱歉，我这边出了点问题，请稍后再试。",
    },
    "admin_only": {
        "en": "Rebuilding the index is for the bot's administrators only.",
        "zh": "只有机器人的管理员才能重建索引。",
    },
    "reindex_busy": {
        "en": "A rebuild is already running; its progress is shown in its own message.",
        "zh": "已有一次重建正在进行，进度显示在它自己的消息中。",
    },
    "reindex_reading": {
        "en": "Rebuilding the index: reading the articles…",
        "zh": "正在重建索引：读取文章……",
    },
    "reindex_progress": {
        "en": "Rebuilding the index: {done}/{total} texts embedded ({percent}%)…",
        "zh": "正在重建索引：已嵌入 {done}/{total} 条文本（{percent}%）……",
    },
    "reindex_done": {
        "en": (
            "Index rebuilt from {documents} article(s) ({passages} passages) in {seconds} s. "
            "New questions are answered from it."
        ),
        "zh": (
            "索引已重建：{documents} 篇文章，{passages} 个段落，用时 {seconds} 秒。"
            "新问题将使用新索引回答。"
        ),
    },
    "reindex_warnings": {
        "en": "{count} warning(s):",
        "zh": "{count} 条警告：",
    },
    "reindex_eta": {"en": " About {minutes} min left.", "zh": "大约还需 {minutes} 分钟。"},
    "reindex_cancelled": {
        "en": "The rebuild was stopped because the bot is shutting down; the previous index stays.",
        "zh": "机器人正在关闭，重建已停止，原来的索引保持不变。",
    },
    "reindex_failed": {
        "en": "The rebuild failed; the previous index keeps answering.\n{reason}",
        "zh": "重建失败，仍由原来的索引回答问题。\n{reason}",
    },
    "slow_down": {
        "en": (
            "You are asking faster than I can answer well: I answer {limit} questions per "
            "{window} seconds. Questions you send in the next {seconds} s are skipped; "
            "please ask them again after that."
        ),
        "zh": "你提问太快了：我每 {window} 秒回答 {limit} 个问题。接下来 {seconds} 秒内发送的问题将被跳过，请之后再问。",
    },
    "add_admin_only": {
        "en": "Only the bot's administrators can add articles. Ask one of them to add this file.",
        "zh": "只有机器人的管理员才能添加文章，请让管理员添加这个文件。",
    },
    "add_wrong_type": {
        "en": "{name} is not an article file I can read: send {kinds}.",
        "zh": "{name} 不是我能读取的文章文件：请发送 {kinds} 文件。",
    },
    "add_too_big": {
        "en": "{name} is larger than the {mb} MB an article may have (QABOT_MAX_ARTICLE_MB).",
        "zh": "{name} 超过了文章大小上限 {mb} MB（QABOT_MAX_ARTICLE_MB）。",
    },
    "add_exists": {
        "en": "There is already an article with the id {name}; files are never replaced. "
        "Rename the file, or take the old one out of the corpus folder first.",
        "zh": "已有 id 为 {name} 的文章，不会覆盖。请重命名文件，或先从文章目录中移除旧文章。",
    },
    "add_duplicate": {
        "en": "{name} is the same file as the article {existing}: nothing to add.",
        "zh": "{name} 与文章 {existing} 完全相同，无需添加。",
    },
    "add_bad_name": {
        "en": "{name} has a broken character in its name (half an emoji, perhaps). Rename the "
        "file and send it again; nothing was changed.",
        "zh": "{name} 的文件名里有一个损坏的字符（可能是半个表情符号）。请重命名文件后再发送；没有做任何更改。",
    },
    "add_name_too_long": {
        "en": "{name} is too long a name for a file ({length} bytes; {limit} at most). Shorten "
        "the name and send it again; nothing was changed.",
        "zh": "{name} 作为文件名太长了（{length} 字节，最多 {limit} 字节）。请缩短文件名后再发送；没有做任何更改。",
    },
    "add_unreadable": {
        "en": "{name} cannot be added: {reason}. Nothing was changed.",
        "zh": "无法添加 {name}：{reason}。没有做任何更改。",
    },
    "add_not_saved": {
        "en": "{name} could not be saved in the articles folder ({reason}). Nothing was changed.",
        "zh": "无法把 {name} 保存到文章文件夹（{reason}）。没有做任何更改。",
    },
    "add_download_failed": {
        "en": "I could not fetch the file from Telegram. Please send it again.",
        "zh": "无法从 Telegram 获取该文件，请重新发送。",
    },
    "add_undone": {
        "en": "{name} was taken out again, so the articles are as they were.",
        "zh": "{name} 已被撤回，文章保持原样。",
    },
    "add_done_one": {
        "en": "Added <b>{title}</b> (id {id}): 1 passage, answering now.",
        "zh": "已添加<b>{title}</b>（id {id}）：1 个段落，现在即可回答相关问题。",
    },
    "add_done": {
        "en": "Added <b>{title}</b> (id {id}): {passages} passages, answering now.",
        "zh": "已添加<b>{title}</b>（id {id}）：{passages} 个段落，现在即可回答相关问题。",
    },
    "remove_admin_only": {
        "en": "Only the bot's administrators can remove articles.",
        "zh": "只有机器人的管理员才能移除文章。",
    },
    "remove_usage": {
        "en": "Send /remove followed by an article's id, e.g. <code>/remove my-article</code>. "
        "/articles lists the ids.",
        "zh": "请发送 /remove 加文章 id，例如 <code>/remove my-article</code>。/articles 列出所有 id。",
    },
    "remove_unknown": {
        "en": "No article has the id {id}. /articles lists the ids.",
        "zh": "没有 id 为 {id} 的文章。/articles 列出所有 id。",
    },
    "remove_ask": {
        "en": "Remove <b>{title}</b> (id {id}, {passages} passages)? Its file is moved out of "
        "the corpus folder and the index rebuilt.",
        "zh": "要移除<b>{title}</b>（id {id}，{passages} 个段落）吗？它的文件将移出文章目录，并重建索引。",
    },
    "remove_button": {"en": "Remove", "zh": "移除"},
    "keep_button": {"en": "Keep it", "zh": "保留"},
    "remove_kept": {
        "en": "Nothing was removed.",
        "zh": "没有移除任何文章。",
    },
    "remove_gone": {
        "en": "That article is no longer in the index; nothing was removed.",
        "zh": "该文章已不在索引中，没有移除任何内容。",
    },
    "remove_undone": {
        "en": "The file of {id} was put back, so the articles are as they were.",
        "zh": "{id} 的文件已放回，文章保持原样。",
    },
    "remove_done": {
        "en": "Removed <b>{title}</b> (id {id}); {articles} article(s) answer now. "
        "The file is kept as {kept} in the corpus folder.",
        "zh": "已移除<b>{title}</b>（id {id}），现在由 {articles} 篇文章回答。文件保存在文章目录的 {kept}。",
    },
    "inline_no_match": {
        "en": "No good match in the articles",
        "zh": "文章中没有合适的答案",
    },
    "vote_up_button": {"en": "👍", "zh": "👍"},
    "vote_down_button": {"en": "👎", "zh": "👎"},
    "vote_recorded": {
        "en": "Thanks, noted. It helps the admins see what works.",
        "zh": "谢谢，已记下，这能帮助管理员改进。",
    },
    "vote_changed": {"en": "Changed, thanks.", "zh": "已更改，谢谢。"},
    "vote_same": {"en": "Already noted, thanks.", "zh": "已经记下了，谢谢。"},
    "stats_admin_only": {
        "en": "Statistics are for the bot's administrators only.",
        "zh": "只有机器人的管理员才能查看统计。",
    },
    "stats": {
        "en": (
            "<b>Questions</b>: {today} today, {week} in 7 days, {total} in all; "
            "{answered} answered."
        ),
        "zh": "<b>提问</b>：今天 {today} 个，7 天内 {week} 个，共 {total} 个；{answered} 得到回答。",
    },
    "stats_declined": {
        "en": "<b>Most asked, not answered</b>",
        "zh": "<b>最常被问、未能回答的问题</b>",
    },
    "stats_disliked": {"en": "<b>Answers voted 👎</b>", "zh": "<b>被点 👎 的回答</b>"},
    "stats_none": {"en": "none yet", "zh": "暂无"},
    "reindex_failed_unknown": {
        "en": "an unexpected error (details are in the bot's log).",
        "zh": "发生了意外错误（详情见机器人日志）。",
    },
}


def text(key: str, lang: Lang, **values: object) -> str:
    """The HTML string ``key`` in ``lang`` with its placeholders filled in, escaped."""
    template = _STRINGS[key][lang]
    return template.format(**{name: html.escape(str(value)) for name, value in values.items()})


def plain(key: str, lang: Lang, **values: object) -> str:
    """The string ``key`` as plain text, for places without HTML (callback answers, buttons)."""
    return html.unescape(text(key, lang, **values))


def keys() -> list[str]:
    """Every string key: lets tests check that each one is valid Telegram HTML."""
    return list(_STRINGS)


def choose_language(language_code: str | None, message_text: str = "") -> Lang:
    """Chinese when the user's Telegram language is Chinese or the question is (by the
    engine's own rule, :func:`corpus.language.detect_language`), else English."""
    if language_code and language_code.lower().startswith("zh"):
        return "zh"
    return "zh" if detect_language(message_text) == "zh" else "en"
