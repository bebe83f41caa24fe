"""Text in many scripts and shapes, for the tests that no text can hurt the engine or the server."""

SCRIPTS = {
    "cjk": "今天天气很好我们一起去公园散步吧春天来了花都开了鸟儿在树上唱歌" * 10,
    "arabic": "مرحبا بكم في عالم الذكاء الاصطناعي " * 9,
    "devanagari": "नमस्ते दुनिया यह एक परीक्षण है " * 10,
    "emoji": "😀🚀🎉🌍🔥🍕🎵💡" * 19,
    "combining marks": "e\u0301a\u0300o\u0308 " * 75,
    "right-to-left marks": "\u202eabc\u202c def \u200fghi " * 20,
    "zero-width joiners": "👨\u200d👩\u200d👧\u200d👦 " * 50,
    "one long word": "a" * 65536,
    "digits only": "1234567890" * 30,
    "control characters": "Hello\x00world\x07 and\x1b[31m red\x9b text.",
}
