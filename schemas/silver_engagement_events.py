"""``silver_engagement_events``: engagement events by event date, typed, deduplicated and conformed (see :mod:`schemas._silver`)."""
from schemas import raw_engagement_events
from schemas._silver import silver_schema

KEYS = ['dt', 'event_id']          # unique per load partition
PARTITION_COLS = ["dt"]
ZORDER_COLS = ['creator_id']     # the column detectors filter and join on
FORMAT = "delta"
PSEUDONYMISE: tuple[str, ...] = ('user_id',)   # raw user-id columns replaced by <name>_key
AMOUNT = 'gmv'                  # local-currency amount that gains <amount>_usd
LOCAL_DATE_OF = 'ts'            # UTC timestamp that gains local_date
SCHEMA = silver_schema(raw_engagement_events.SCHEMA, pseudonymise=PSEUDONYMISE, amount=AMOUNT, local_date_of=LOCAL_DATE_OF)
