# متن‌های مسافر ManCard، فارسی (زبان پیش‌فرض). شناسهٔ هر پیام یک کد ثابت است؛ هستهٔ Rust
# عددها، مبلغ‌ها و تاریخ‌ها را با رقم‌های فارسی و تقویم هجری خورشیدی می‌سازد و به پیام می‌دهد.

## مبلغ‌ها
amount = { $toman } تومان
validator-amount = { $toman } تومان

## نمایشگر کارت‌خوان
validator-accepted = پذیرفته شد – { $fare } ({ $kind })
validator-accepted-free = پذیرفته شد – سفر رایگان ({ $kind })
validator-refused = پذیرفته نشد: { $reason }
fare-kind-full = کرایهٔ کامل
fare-kind-transfer = انتقال
fare-kind-capped = سقف روزانه پر شده

## چرا کارت‌خوان سفر را نپذیرفت
refusal-not_configured = کارت‌خوان آماده نیست (پیکربندی ندارد) – لطفاً از در دیگر استفاده کنید
refusal-line_not_in_tariff = پیکربندی کارت‌خوان نادرست است (خط { $line } کرایه ندارد)
refusal-no_credential = این گوشی کارت ManCard ندارد – برای گرفتن کارت برنامه را باز کنید
refusal-not_a_mancard = این کارت ManCard نیست – گوشی دارای ManCard را به کارت‌خوان نزدیک کنید
refusal-wallet_locked = ManCard قفل است – قفل گوشی را باز کنید و دوباره بزنید
refusal-expired = اعتبار کارت تمام شده – برای تمدید، برنامه را با اینترنت باز کنید
refusal-not_yet_valid = کارت هنوز معتبر نیست – تاریخ گوشی را بررسی کنید
refusal-credential_not_valid = کارت اکنون معتبر نیست – برای تمدید، برنامه را با اینترنت باز کنید
refusal-blocked = کارت مسدود است – با پشتیبانی ManCard تماس بگیرید
refusal-already_used = قبلاً استفاده شده – کرایهٔ این سفر پرداخت شده است
refusal-insufficient_allowance = اعتبار آفلاین برای { $fare } کافی نیست – حساب را شارژ کنید یا به اینترنت وصل شوید
refusal-counters_exhausted = سفرهای آفلاین تمام شده – برنامه را با اینترنت باز کنید
refusal-counter_out_of_range = دادهٔ کارت نامعتبر است (شمارنده) – برنامه را با اینترنت باز کنید
refusal-phone_clock_off = کد QR منقضی شده یا ساعت گوشی درست نیست – کد تازه نشان دهید
refusal-unknown_issuer = کارت شناخته نشد (صادرکنندهٔ ناشناس)
refusal-issuer_key_not_valid = کارت شناخته نشد (کلید صادرکننده نامعتبر)
refusal-bad_signature = کارت شناخته نشد (امضای نادرست)
refusal-amount_mismatch = گوشی کرایه را تأیید نکرد – دوباره بزنید
refusal-challenge_mismatch = پاسخ برای این سفر معتبر نیست – دوباره بزنید
refusal-phone_storage_failure = گوشی نتوانست سفر را ذخیره کند – دوباره بزنید
refusal-card_error = خطای کارت { $sw } ({ $sw_text }) – دوباره بزنید
refusal-malformed = پاسخ گوشی خوانا نیست – دوباره بزنید
refusal-communication = تماس کوتاه بود – گوشی را ثابت نگه دارید و دوباره بزنید
refusal-not_a_pass = این کد QR مال ManCard نیست
refusal-journal_failure = کارت‌خوان خراب است – لطفاً از در دیگر استفاده کنید
refusal-internal = خطای کارت‌خوان – لطفاً دوباره بزنید
refusal-no_validator_certificate = کارت‌خوان آماده نیست (گواهی کارت‌خوان نصب نشده) – لطفاً از در دیگر استفاده کنید
refusal-validator_blocked = این کارت‌خوان مسدود است – لطفاً از در دیگر استفاده کنید
refusal-validator_certificate_not_valid = گواهی کارت‌خوان منقضی شده یا ساعت آن نادرست است – لطفاً از در دیگر استفاده کنید
refusal-validator_line_not_allowed = این کارت‌خوان اجازهٔ کار در خط { $line } را ندارد – لطفاً از در دیگر استفاده کنید
refusal-non_canonical_signature = کارت شناخته نشد (امضای دست‌کاری‌شده) – کد تازه نشان دهید یا گوشی را بزنید
refusal-pass_too_long = اعتبار کد QR بیش از حد طولانی است (حداکثر { $max } ثانیه) – کد تازه نشان دهید
refusal-fare_class_mismatch = گوشی نوع کرایه را تأیید نکرد – دوباره بزنید
refusal-reader_certificate_required = گوشی گواهی کارت‌خوان را لازم دارد – دوباره بزنید
refusal-reader_unknown = گوشی به این کارت‌خوان اعتماد ندارد – برنامه را با اینترنت باز کنید یا از در دیگر استفاده کنید
refusal-reader_expired = به گفتهٔ گوشی، گواهی این کارت‌خوان منقضی شده – لطفاً از در دیگر استفاده کنید
refusal-reader_denied = به گفتهٔ گوشی، این کارت‌خوان مسدود است – لطفاً از در دیگر استفاده کنید
refusal-bad_challenge_signature = گوشی امضای کارت‌خوان را نپذیرفت – لطفاً از در دیگر استفاده کنید
refusal-reader_clock_off = ساعت گوشی و کارت‌خوان یکی نیست – تاریخ و ساعت گوشی را بررسی کنید
refusal-fare_too_high = گوشی نپذیرفت: کرایه بیش از تعرفه است – لطفاً از در دیگر استفاده کنید
refusal-too_many_taps = در این دقیقه بیش از حد زده‌اید – یک دقیقه صبر کنید و دوباره بزنید
refusal-reader_line_not_allowed = به گفتهٔ گوشی، این کارت‌خوان در این خط اجازهٔ دریافت کرایه ندارد – از در دیگر استفاده کنید
refusal-stale_challenge = سفر نیمه‌کاره ماند (درخواست قدیمی) – دوباره بزنید
refusal-phone_not_ready = برنامهٔ گوشی در حال باز شدن است – کمی صبر کنید و دوباره بزنید

## پاسخ‌های کارت (status word)
sw-ok = انجام شد
sw-wrong_length = طول نادرست
sw-incorrect_data = دادهٔ نادرست
sw-app_not_found = برنامه پیدا نشد
sw-wrong_p1p2 = پارامتر نادرست
sw-wallet_locked = کیف پول قفل است
sw-conditions_not_satisfied = دستور خارج از ترتیب
sw-no_credential = این گوشی بلیت ندارد
sw-credential_not_valid = بلیت اکنون معتبر نیست
sw-counters_exhausted = سفرهای آفلاین تمام شده
sw-allowance_exhausted = اعتبار آفلاین برای این کرایه کافی نیست
sw-storage_failure = گوشی نتوانست سفر را ثبت کند
sw-ins_not_supported = دستور پشتیبانی نمی‌شود
sw-cla_not_supported = کلاس دستور پشتیبانی نمی‌شود
sw-internal = خطای داخلی
sw-reader_certificate_required = گوشی گواهی کارت‌خوان را لازم دارد
sw-reader_unknown = این گوشی به کارت‌خوان اعتماد ندارد
sw-reader_expired = گواهی کارت‌خوان منقضی شده
sw-reader_denied = کارت‌خوان مسدود است
sw-bad_challenge_signature = امضای کارت‌خوان نادرست است
sw-reader_clock_off = ساعت کارت‌خوان نادرست است
sw-fare_too_high = کرایه بیش از هر کرایهٔ تعرفه است
sw-too_many_taps = در این دقیقه بیش از حد زده شده
sw-reader_line_not_allowed = کارت‌خوان اجازهٔ دریافت کرایه در این خط را ندارد
sw-stale_challenge = درخواست مربوط به نشست دیگری است
sw-not_ready = کیف پول هنوز باز نشده
sw-other = پاسخ ناشناخته

## وضعیت کارت
state-no_credential = هنوز کارتی ندارید
state-active = فعال
state-replenish_due = فعال، نیاز به تمدید
state-not_yet_valid = هنوز معتبر نیست
state-expired = منقضی شده
state-revoked = باطل شده
state-exhausted = سفرهای آفلاین تمام شده
state-key_unavailable = کارت تازه لازم است

## خط وضعیت کارت
status-no-ticket = هنوز بلیتی روی این گوشی نیست
status-usable = { $rides_text } سفر / { $amount } اعتبار آفلاین تا { $until }
status-not-usable = بلیت قابل استفاده نیست: { $problem }
problem-not_yet_valid = هنوز معتبر نیست
problem-expired = منقضی شده
problem-exhausted = سفرهای آفلاین تمام شده
problem-moved = این کارت به گوشی دیگری منتقل شده است
problem-revoked = باطل شده: { $why }
problem-key_unavailable = کلید کارت روی این گوشی قابل استفاده نیست؛ برای گرفتن کارت تازه دوباره وارد شوید
revoked-refusal = بلیت باطل شده است: { $why }

## چرا بلیت باطل شد
revocation-none = دلیلی ذکر نشده
revocation-shared_pass = { $reason }، بیش از حد مجاز در یک روز
revocation-fraud = پروندهٔ تقلب باز شد ({ $reason })؛ حساب تا روشن شدن پرونده مسدود است

## دلیل‌های سامانه برای کرایه، اصلاح یا رد
reason-none = دلیلی ذکر نشده
reason-torn_gate_closed = در باز نشد
reason-pass_not_scanned = کد QR هرگز اسکن نشد
reason-pass_expired_unscanned = کد QR بی‌آنکه اسکن شود منقضی شد
reason-shared_pass = یک کد QR در بیش از یک اتوبوس نشان داده شد
reason-from_the_future = تاریخ آن در آینده است
reason-over_allowance = بیش از اعتبار آفلاین
reason-duplicate_counter = یک شمارنده دو بار به کار رفت
reason-counter_out_of_range = شمارنده بیرون از محدودهٔ کارت
reason-broken_chain = فهرست سفرهای گوشی دست‌کاری شده بود
reason-transfer = انتقال
reason-daily_cap = سقف روزانه
reason-rerated = کرایه دوباره محاسبه شد
reason-replaced_by_new_device = این کارت به گوشی دیگری منتقل شده است

## وضعیت هر ردیف تاریخچه
history-not_settled = هنوز تسویه نشده
history-pass_shown = کد QR نشان داده شد
history-pass_not_used = استفاده نشد
history-charged = { $amount } کسر شد
history-corrected = به جای { $authorized }، { $amount } کسر شد: { $why }
history-not_charged = چیزی کسر نشد: { $why }
history-rejected = چیزی کسر نشد، گزارش پذیرفته نشد: { $why }
history-fraud = { $amount } کسر شد، پروندهٔ تقلب باز شد: { $why }
history-refused = رد شد
history-credited = { $amount } افزوده شد
detail-recovered = از سامانه بازیابی شد
detail-phone-refused = گوشی نپذیرفت: { $why }
detail-top_up = شناسهٔ پرداخت: { $reference }
detail-adjustment = اصلاح: { $note }
