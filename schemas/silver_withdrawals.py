"""``silver_withdrawals``: payout requests by date, typed, deduplicated and conformed (see :mod:`schemas._silver`)."""
from schemas import raw_withdrawals
from schemas._silver import silver_schema

KEYS = ['dt', 'withdrawal_id']          # unique per load partition
PARTITION_COLS = ["dt"]
ZORDER_COLS = ['creator_id']     # the column detectors filter and join on
FORMAT = "delta"
PSEUDONYMISE: tuple[str, ...] = ()   # raw user-id columns replaced by <name>_key
AMOUNT = 'amount'                  # local-currency amount that gains <amount>_usd
LOCAL_DATE_OF = None            # UTC timestamp that gains local_date
SCHEMA = silver_schema(raw_withdrawals.SCHEMA, pseudonymise=PSEUDONYMISE, amount=AMOUNT, local_date_of=LOCAL_DATE_OF)
