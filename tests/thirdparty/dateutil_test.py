# python-dateutil: parsing, relativedelta, rrule, with zoneinfo time zones
# (the guest's come from the tzdata package in the stdlib image).
import datetime
from zoneinfo import ZoneInfo
from dateutil import parser, relativedelta, rrule, easter, tz

for s in ("2003-09-25T10:49:41", "Thu Sep 25 10:36:28 BRST 2003", "25 Sep 2003 10:49:41.5 -0300",
          "2003.Sep.25", "09-25-2003", "10h36m28.5s", "Thursday at 3pm"):
    try:
        print(repr(parser.parse(s, default=datetime.datetime(2003, 9, 25), tzinfos={"BRST": -10800})))
    except (ValueError, OverflowError) as e:
        print("error", s, e)
print(parser.isoparse("2020-02-29T12:34:56.789+05:30"))
d = datetime.datetime(2020, 1, 31, 12, tzinfo=ZoneInfo("Europe/Berlin"))
print(d + relativedelta.relativedelta(months=+1), d + relativedelta.relativedelta(years=1, weekday=relativedelta.FR(-1)))
print(relativedelta.relativedelta(datetime.date(2024, 3, 1), datetime.date(2021, 7, 15)))
r = rrule.rrule(rrule.WEEKLY, count=6, byweekday=(rrule.MO, rrule.TH), dtstart=datetime.datetime(2024, 3, 25, 9, tzinfo=ZoneInfo("America/New_York")))
for dt in r:
    print(dt.isoformat(), dt.utcoffset(), dt.tzname())
print(rrule.rrulestr("FREQ=MONTHLY;BYDAY=-1FR;COUNT=4", dtstart=datetime.datetime(2023, 1, 1)).between(
    datetime.datetime(2023, 1, 1), datetime.datetime(2023, 12, 31)))
print([easter.easter(y) for y in (2024, 2025, 2026)])
print(datetime.datetime(2024, 6, 1, tzinfo=tz.tzoffset("X", 3600)).astimezone(tz.UTC), tz.tzutc())
for zone in ("Asia/Kolkata", "Australia/Lord_Howe", "Europe/London", "Pacific/Chatham"):
    z = ZoneInfo(zone)
    print(zone, [datetime.datetime(2024, m, 15, tzinfo=z).strftime("%z %Z") for m in (1, 7)])
