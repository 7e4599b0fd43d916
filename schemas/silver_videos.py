"""``silver_videos``: videos and live sessions with their multimodal signals, by publish date, typed, deduplicated and conformed (see :mod:`schemas._silver`)."""
from schemas import raw_videos
from schemas._silver import silver_schema

KEYS = ['dt', 'video_id']          # unique per load partition
PARTITION_COLS = ["dt"]
ZORDER_COLS = ['creator_id']     # the column detectors filter and join on
FORMAT = "delta"
PSEUDONYMISE: tuple[str, ...] = ()   # raw user-id columns replaced by <name>_key
AMOUNT = None                  # local-currency amount that gains <amount>_usd
LOCAL_DATE_OF = None            # UTC timestamp that gains local_date
SCHEMA = silver_schema(raw_videos.SCHEMA, pseudonymise=PSEUDONYMISE, amount=AMOUNT, local_date_of=LOCAL_DATE_OF)
