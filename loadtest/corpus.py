"""Replies the load generator speaks: a built-in corpus of assistant replies, or texts read from a file.

The built-in replies mimic what a voice assistant says: one to four sentences, with numbers, times, names,
abbreviations, questions, lists and quotes, so that the server's text segmentation and the voice see the
variety they will meet in production.
"""

from pathlib import Path

BUILTIN_REPLIES: tuple[str, ...] = (
    "Sure, I can help with that.",
    "Your next meeting is at 3:30 PM with the design team, in room 4B.",
    "It's currently 18 degrees and partly cloudy in Lisbon. Expect light rain after 6 this evening.",
    "I've set a timer for 25 minutes. I'll let you know when it's done.",
    "The capital of Australia is Canberra, not Sydney, which surprises a lot of people.",
    "Here's a quick summary: revenue grew 12 percent, costs stayed flat, and the team hired four engineers.",
    "Sorry, I didn't catch that. Could you say it again?",
    "To reset your password, open Settings, tap Account, then choose Reset Password. "
    "You'll get an email with a link that's valid for 24 hours.",
    "Absolutely! Let's start with the basics.",
    "The flight from Boston to Denver takes about four and a half hours, and there's a one-hour time "
    "difference.",
    "Dr. Smith's office opens at 8 a.m. on weekdays. Would you like me to book an appointment?",
    "Mix two cups of flour with one teaspoon of baking soda. Then add the butter, a little at a time.",
    "Hmm, that's a tricky one. I think the answer is 42, but let me double-check.",
    "Your order #58213 shipped yesterday and should arrive by Thursday.",
    "Good morning! You have three new messages and one missed call from Alex.",
    "The Eiffel Tower is about 330 meters tall. It was finished in 1889 for the World's Fair.",
    "I found five Italian restaurants nearby. The closest one, Trattoria Roma, is 400 meters away and "
    "has a 4.6 star rating.",
    "Okay, I've added milk, eggs, and spinach to your shopping list.",
    "That's a great question. Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "No problem.",
    "Traffic is heavy on the I-95 this morning. Leaving now, you'd arrive at about 9:15.",
    "The meeting was moved from Tuesday to Wednesday, same time. I've updated your calendar.",
    "Yes, the store is open until 9 p.m. tonight. On Sundays it closes at 6.",
    "In Python, a list is mutable and a tuple is not. Use a tuple when the values shouldn't change.",
    "I'm sorry to hear that. Would it help to talk through what happened?",
    "Your balance is $1,284.50. The last transaction was a $32.99 payment to City Books.",
    "Take the second exit at the roundabout, then keep left for about 800 meters.",
    "Here's a fun fact: octopuses have three hearts and blue blood.",
    "The report is due on March 3rd. That gives you nine working days, including today.",
    "I can't turn off the oven remotely, but I can remind you in ten minutes to check it.",
    "Let me think. If the train leaves at 7:40 and the trip takes 2 hours and 5 minutes, you'll arrive "
    "at 9:45.",
    'She said, "See you at noon," and hung up.',
    "Playing your Focus playlist. The first song is Clair de Lune by Debussy.",
    "Step one: unplug the router. Step two: wait thirty seconds. Step three: plug it back in and wait for "
    "the light to turn green.",
    "The word 'serendipity' means finding something good without looking for it.",
    "Well, it depends. For short trips the bike is faster; for anything over ten kilometers, take the bus.",
    "Done! I sent the message to Maria.",
    "Your heart rate averaged 72 beats per minute today, a bit lower than last week.",
    "Hi there! How can I help you today?",
    "The package weighs 2.3 kilograms, so standard shipping costs €8.90.",
    "I'd recommend starting with the free tier. You can upgrade at any time, and your data carries over.",
    "Unfortunately, that product is out of stock. Should I notify you when it's back?",
    "The speed of light is roughly 300,000 kilometers per second. Light from the Sun takes about eight "
    "minutes to reach us.",
    "Great job! You've hit your step goal five days in a row.",
    "Wait, are you sure? Deleting this folder will remove 128 files permanently.",
    "Tomorrow looks sunny, with a high of 24 and a low of 15. It's a good day for the beach.",
    "Chapter 7 covers the French Revolution, from the storming of the Bastille in 1789 to the rise of "
    "Napoleon.",
    "Of course. I'll remind you to call your mom at 6:00 PM.",
    "The Wi-Fi password is on the back of the router, under the label that says WPA key.",
    "Let's see... 15 percent of 80 is 12, so the tip would be 12 dollars.",
    "Right, here's the plan. We'll meet at the station at 10, grab coffee, and head to the museum. "
    "Tickets are already booked. Sound good?",
)


def read_texts(path: Path) -> tuple[str, ...]:
    """Read replies from a UTF-8 text file.

    A file with blank lines between its texts is split into paragraphs (the lines of a paragraph are joined
    with a space); a file without them gives one reply per non-empty line. Raises ValueError when the file
    holds no text.
    """
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    paragraphs = _paragraphs(lines)
    texts = paragraphs if len(paragraphs) > 1 else [line for line in lines if line]
    if not texts:
        raise ValueError(f"{path} holds no text to speak")
    return tuple(texts)


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return paragraphs
