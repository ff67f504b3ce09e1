# ManCard سرنشین متنلری، گونئی آذربایجان تورکجه‌سی (عرب الیفباسی). هر مئساژین شناسه‌سی
# ثابت بیر کوددور؛ Rust هسته‌سی رقم‌لری، مبلغ‌لری و تاریخ‌لری (گونش هجری) حاضیرلاییر.
# بو متنلر آنا دیلی آذربایجان تورکجه‌سی اولان بیر اوخوجو طرفیندن یوخلانمالیدیر (ADR 0013).

## مبلغ‌لر
amount = { $toman } تومن
validator-amount = { $toman } تومن

## کارت‌اوخویانین ائکرانی
validator-accepted = قبول اولوندو – { $fare } ({ $kind })
validator-accepted-free = قبول اولوندو – پولسوز سفر ({ $kind })
validator-refused = رد اولوندو: { $reason }
fare-kind-full = تام کیرایه
fare-kind-transfer = کئچید
fare-kind-capped = گونده‌لیک سقف دولوب

## کارت‌اوخویان سفری نییه رد ائتدی
refusal-not_configured = کارت‌اوخویان حاضیر دئییل (تنظیمی یوخدور) – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-line_not_in_tariff = کارت‌اوخویانین تنظیمی یانلیشدیر ({ $line } خطین کیرایه‌سی یوخدور)
refusal-no_credential = بو تلفوندا ManCard یوخدور – کارت آلماق اوچون پروقرامی آچین
refusal-not_a_mancard = بو ManCard دئییل – ManCard-لی تلفونو کارت‌اوخویانا یاخینلاشدیرین
refusal-wallet_locked = ManCard قیفیللیدیر – تلفونون قیفیلینی آچین و یئنیدن وورون
refusal-expired = کارتین واختی بیتیب – تزه‌لمک اوچون پروقرامی اینترنئتله آچین
refusal-not_yet_valid = کارت هله اعتبارلی دئییل – تلفونون تاریخینی یوخلایین
refusal-credential_not_valid = کارت ایندی اعتبارلی دئییل – تزه‌لمک اوچون پروقرامی اینترنئتله آچین
refusal-blocked = کارت بلوکلانیب – ManCard دستگی ایله علاقه ساخلایین
refusal-already_used = آرتیق ایستیفاده اولونوب – بو سفرین کیرایه‌سی اؤدنیب
refusal-insufficient_allowance = { $fare } اوچون آفلاین اعتبار یئترلی دئییل – حسابی شارژ ائدین یا اینترنئته قوشولون
refusal-counters_exhausted = آفلاین سفرلر قورتاریب – پروقرامی اینترنئتله آچین
refusal-counter_out_of_range = کارتین معلوماتی یانلیشدیر (سایغاج) – پروقرامی اینترنئتله آچین
refusal-phone_clock_off = QR کودونون واختی بیتیب یا تلفونون ساعاتی یانلیشدیر – تزه کود گؤسترین
refusal-unknown_issuer = کارت تانینمادی (نامعلوم بوراخان)
refusal-issuer_key_not_valid = کارت تانینمادی (بوراخانین آچاری اعتبارسیزدیر)
refusal-bad_signature = کارت تانینمادی (یانلیش ایمضا)
refusal-amount_mismatch = تلفون کیرایه‌نی تصدیق ائتمه‌دی – یئنیدن وورون
refusal-challenge_mismatch = جاواب بو سفر اوچون اعتبارلی دئییل – یئنیدن وورون
refusal-phone_storage_failure = تلفون سفری ساخلایا بیلمه‌دی – یئنیدن وورون
refusal-card_error = کارت خطاسی { $sw } ({ $sw_text }) – یئنیدن وورون
refusal-malformed = تلفونون جاوابی اوخونمور – یئنیدن وورون
refusal-communication = توخونوش قیسا اولدو – تلفونو ترپتمه‌دن ساخلایین و یئنیدن وورون
refusal-not_a_pass = بو ManCard-ین QR کودو دئییل
refusal-journal_failure = کارت‌اوخویان ایشله‌میر – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-internal = کارت‌اوخویان خطاسی – لطفاً یئنیدن وورون
refusal-no_validator_certificate = کارت‌اوخویان حاضیر دئییل (سئرتیفیکاتی قورولماییب) – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-validator_blocked = بو کارت‌اوخویان بلوکلانیب – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-validator_certificate_not_valid = کارت‌اوخویانین سئرتیفیکاتینین واختی بیتیب یا ساعاتی یانلیشدیر – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-validator_line_not_allowed = بو کارت‌اوخویانا { $line } خطینده ایجازه یوخدور – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-non_canonical_signature = کارت تانینمادی (دَییشدیریلمیش ایمضا) – تزه کود گؤسترین یا تلفونو وورون
refusal-pass_too_long = QR کودو چوخ اوزون مدت اعتبارلیدیر (ان چوخو { $max } ثانیه) – تزه کود گؤسترین
refusal-fare_class_mismatch = تلفون کیرایه نؤوعونو تصدیق ائتمه‌دی – یئنیدن وورون
refusal-reader_certificate_required = تلفونا کارت‌اوخویانین سئرتیفیکاتی لازیمدیر – یئنیدن وورون
refusal-reader_unknown = تلفون بو کارت‌اوخویانا اینانمیر – پروقرامی اینترنئتله آچین یا باشقا قاپیدان ایستیفاده ائدین
refusal-reader_expired = تلفونا گؤره بو کارت‌اوخویانین سئرتیفیکاتینین واختی بیتیب – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-reader_denied = تلفونا گؤره بو کارت‌اوخویان بلوکلانیب – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-bad_challenge_signature = تلفون کارت‌اوخویانین ایمضاسینی قبول ائتمه‌دی – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-reader_clock_off = تلفونون و کارت‌اوخویانین ساعاتی اویغون دئییل – تلفونون تاریخ و ساعاتینی یوخلایین
refusal-fare_too_high = تلفون قبول ائتمه‌دی: کیرایه تعرفه‌دن چوخدور – لطفاً باشقا قاپیدان ایستیفاده ائدین
refusal-too_many_taps = بو دقیقه‌ده چوخ وورولوب – بیر دقیقه گؤزله‌یین و یئنیدن وورون
refusal-reader_line_not_allowed = تلفونا گؤره بو کارت‌اوخویان بو خطده کیرایه آلا بیلمز – باشقا قاپیدان ایستیفاده ائدین
refusal-stale_challenge = توخونوش یاریمچیق قالدی (کؤهنه سوْرغو) – یئنیدن وورون
refusal-phone_not_ready = تلفونون پروقرامی آچیلیر – بیر آز گؤزله‌یین و یئنیدن وورون

## کارتین جاوابلاری (status word)
sw-ok = اولدو
sw-wrong_length = یانلیش اوزونلوق
sw-incorrect_data = یانلیش معلومات
sw-app_not_found = پروقرام تاپیلمادی
sw-wrong_p1p2 = یانلیش پارامتر
sw-wallet_locked = کیف قیفیللیدیر
sw-conditions_not_satisfied = امر سیراسیز گلدی
sw-no_credential = بو تلفوندا بیلئت یوخدور
sw-credential_not_valid = بیلئت ایندی اعتبارلی دئییل
sw-counters_exhausted = آفلاین سفرلر قورتاریب
sw-allowance_exhausted = آفلاین اعتبار بو کیرایه اوچون یئترلی دئییل
sw-storage_failure = تلفون سفری یازا بیلمه‌دی
sw-ins_not_supported = امر دستکلنمیر
sw-cla_not_supported = امر صینیفی دستکلنمیر
sw-internal = ایچ خطا
sw-reader_certificate_required = تلفونا کارت‌اوخویانین سئرتیفیکاتی لازیمدیر
sw-reader_unknown = بو تلفون کارت‌اوخویانا اینانمیر
sw-reader_expired = کارت‌اوخویانین سئرتیفیکاتینین واختی بیتیب
sw-reader_denied = کارت‌اوخویان بلوکلانیب
sw-bad_challenge_signature = کارت‌اوخویانین ایمضاسی یانلیشدیر
sw-reader_clock_off = کارت‌اوخویانین ساعاتی یانلیشدیر
sw-fare_too_high = کیرایه تعرفه‌نین بوتون کیرایه‌لریندن چوخدور
sw-too_many_taps = بو دقیقه‌ده چوخ وورولوب
sw-reader_line_not_allowed = کارت‌اوخویان بو خطده کیرایه آلا بیلمز
sw-stale_challenge = سوْرغو باشقا اوتوروما عاییددیر
sw-not_ready = کیف هله آچیلمامیش
sw-other = نامعلوم جاواب

## کارتین دورومو
state-no_credential = هله کارتینیز یوخدور
state-active = فعال
state-replenish_due = فعال، تزه‌لنمه‌لیدیر
state-not_yet_valid = هله اعتبارلی دئییل
state-expired = واختی بیتیب
state-revoked = لغو اولونوب
state-exhausted = آفلاین سفرلر قورتاریب
state-key_unavailable = تزه کارت لازیمدیر

## کارتین دوروم خطی
status-no-ticket = بو تلفوندا هله بیلئت یوخدور
status-usable = { $rides_text } سفر / { $amount } آفلاین اعتبار { $until } تاریخینه قدر
status-not-usable = بیلئت ایشلنمیر: { $problem }
problem-not_yet_valid = هله اعتبارلی دئییل
problem-expired = واختی بیتیب
problem-exhausted = آفلاین سفرلر قورتاریب
problem-moved = بو کارت باشقا تلفونا کؤچورولوب
problem-revoked = لغو اولونوب: { $why }
problem-key_unavailable = کارتین آچاری بو تلفوندا ایشلنمیر؛ تزه کارت آلماق اوچون یئنیدن گیریش ائدین
revoked-refusal = بیلئت لغو اولونوب: { $why }

## بیلئت نییه لغو اولوندو
revocation-none = سبب گؤستریلمه‌ییب
revocation-shared_pass = { $reason }، بیر گونده ایجازه وئریلندن چوخ
revocation-fraud = فیریلداق پرونده‌سی آچیلدی ({ $reason })؛ حساب پرونده آیدینلاشانا قدر دوندورولوب

## سیستمین کیرایه، دوزلیش و رد سببلری
reason-none = سبب گؤستریلمه‌ییب
reason-torn_gate_closed = قاپی آچیلمادی
reason-pass_not_scanned = QR کودو هئچ اوخونمادی
reason-pass_expired_unscanned = QR کودو اوخونمامیش واختی بیتدی
reason-shared_pass = عئینی QR کودو بیردن چوخ اتوبوسدا گؤستریلدی
reason-from_the_future = تاریخی گله‌جکده‌دیر
reason-over_allowance = آفلاین اعتباردان چوخ
reason-duplicate_counter = بیر سایغاج ایکی دفعه ایشلندی
reason-counter_out_of_range = سایغاج کارتین آرالیغیندان ائشیکده‌دیر
reason-broken_chain = تلفونون سفر سیاهیسی دَییشدیریلمیشدی
reason-transfer = کئچید
reason-daily_cap = گونده‌لیک سقف
reason-rerated = کیرایه یئنیدن حساب‌لاندی
reason-replaced_by_new_device = بو کارت باشقا تلفونا کؤچورولوب

## تاریخچه سطیرلرینین دورومو
history-not_settled = هله حساب‌لانمامیش
history-pass_shown = QR کودو گؤستریلدی
history-pass_not_used = ایشلنمه‌دی
history-charged = { $amount } کسیلدی
history-corrected = { $authorized } یئرینه { $amount } کسیلدی: { $why }
history-not_charged = هئچ نه کسیلمه‌دی: { $why }
history-rejected = هئچ نه کسیلمه‌دی، گزارش قبول اولونمادی: { $why }
history-fraud = { $amount } کسیلدی، فیریلداق پرونده‌سی آچیلدی: { $why }
history-refused = رد اولوندو
history-credited = { $amount } علاوه اولوندو
detail-recovered = سیستمدن قایتاریلدی
detail-phone-refused = تلفون قبول ائتمه‌دی: { $why }
detail-top_up = اؤدنیش شناسه‌سی: { $reference }
detail-adjustment = دوزلیش: { $note }
