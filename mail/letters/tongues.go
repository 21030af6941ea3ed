package letters

import (
	"fmt"
	"time"
)

// tongue is one language's words and sentences. Sentences that name the
// session are functions, because Estonian and Russian inflect the noun
// differently in each (kohtuistungil / kohtuistungile, в судебном
// заседании / на судебное заседание).
type tongue struct {
	lang                   Lang
	months                 [12]string // the form that follows a day number
	weekdays               [7]string  // from Sunday, as time.Weekday counts
	dateFmt                func(weekday string, day int, month string, year int, hm string) string
	open, close            string // quotation marks
	greeting               string
	subject                map[Kind]string
	role, time, caseNo     string
	newTime, oldTime       string
	toBeAnnounced          string
	joinWith               string
	personal               string // %s: expiry
	advice                 string
	noLinkInCalendar       string
	linkStillValid         string
	linkDead               string
	calendarRemoves        string
	useYourLink            string
	calendarNote, location string
	roles, acts            map[string]string
	summary                func(hearing bool) string // the kind of session, as a calendar names it
	invited                func(hearing bool, what string) string
	newLink                func(hearing bool, what string) string
	timeChanged, timeSet   func(hearing bool, what string) string
	withdrawn              func(hearing bool, what string) string
	mistake                func(hearing bool) string
	reminder               func(hearing bool, what, soon string) string
	inAbout                func(d time.Duration) string
}

func tongueOf(l Lang) *tongue {
	switch l {
	case Estonian:
		return &estonian
	case Russian:
		return &russian
	}
	return &english
}

func tongueLang(l Lang) Lang { return tongueOf(l).lang }

// format writes a moment in a zone the way the language writes dates,
// followed by the zone's name and its offset from UTC then, so that
// nobody has to know what Asia/Tokyo means in winter.
func (t *tongue) format(at time.Time, zone *time.Location) string {
	local := at.In(zone)
	s := t.dateFmt(t.weekdays[local.Weekday()], local.Day(), t.months[local.Month()-1], local.Year(), local.Format("15:04"))
	name := zone.String()
	_, offset := local.Zone()
	if name == "UTC" && offset == 0 {
		return s + " (UTC)"
	}
	sign := "+"
	if offset < 0 {
		sign, offset = "-", -offset
	}
	return fmt.Sprintf("%s (%s, UTC%s%02d:%02d)", s, name, sign, offset/3600, offset%3600/60)
}

func (t *tongue) roleName(r string) string {
	if s, ok := t.roles[r]; ok {
		return s
	}
	return r
}

func (t *tongue) actName(a string) string {
	if s, ok := t.acts[a]; ok {
		return s
	}
	return a
}

// soon splits the time until the start into the unit a person would use:
// minutes under two hours' worth of minutes, hours under two days, days.
func soon(d time.Duration) (n int, unit string) {
	switch {
	case d < 90*time.Minute:
		return max(1, int((d+30*time.Second)/time.Minute)), "minute"
	case d < 48*time.Hour:
		return max(1, int((d+30*time.Minute)/time.Hour)), "hour"
	default:
		return int((d + 12*time.Hour) / (24 * time.Hour)), "day"
	}
}

func pick(hearing bool, h, n string) string {
	if hearing {
		return h
	}
	return n
}

var english = tongue{
	lang:     English,
	months:   [12]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	weekdays: [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
	dateFmt: func(wd string, day int, month string, year int, hm string) string {
		return fmt.Sprintf("%s, %d %s %d, %s", wd, day, month, year, hm)
	},
	open: "“", close: "”",
	greeting: "Dear %s,",
	subject: map[Kind]string{
		Invitation: "Invitation: %s",
		NewLink:    "New link: %s",
		Update:     "New time: %s",
		Cancel:     "Cancelled: %s",
		Reminder:   "Reminder: %s",
	},
	role: "Your role", time: "Time", caseNo: "case",
	newTime: "New time", oldTime: "Previous time",
	toBeAnnounced:    "to be announced; you will receive an e-mail when it is set",
	joinWith:         "Join with your personal link:",
	personal:         "The link is for you alone: anyone who has it can join in your name. It is valid until %s.",
	advice:           "Open it shortly before the start in an up-to-date browser on a device with a camera and a microphone. You may first wait in a waiting room until you are admitted.",
	noLinkInCalendar: "The calendar entry attached to this e-mail does not contain the link: keep this e-mail.",
	linkStillValid:   "Your personal link from the invitation e-mail remains valid. The attached calendar entry replaces the earlier one.",
	linkDead:         "The personal link you received no longer works.",
	calendarRemoves:  "The attached calendar entry removes the event from your calendar.",
	useYourLink:      "Join with the personal link from your invitation e-mail. If you cannot find it, ask for a new one; the old link then stops working.",
	calendarNote:     "Join with the personal link in your invitation e-mail.",
	location:         "Online — link in the invitation e-mail",
	roles: map[string]string{
		"judge": "judge", "clerk": "court clerk", "party": "party", "counsel": "counsel", "witness": "witness",
		"interpreter": "interpreter", "observer": "observer", "notary": "notary", "embassy_officer": "embassy officer",
		"principal": "party to the act",
	},
	acts: map[string]string{
		"will": "will", "contract": "contract", "power_of_attorney": "power of attorney",
		"property_sale": "sale of immovable property", "other": "other notarial act",
	},
	summary: func(h bool) string { return pick(h, "Court hearing", "Notarial act") },
	invited: func(h bool, w string) string {
		return "You are invited to take part in the " + pick(h, "court hearing ", "notarial act ") + w + "."
	},
	newLink: func(h bool, w string) string {
		return "A new personal link has been issued for you to take part in the " + pick(h, "court hearing ", "notarial act ") + w +
			". The link you received before no longer works."
	},
	timeChanged: func(h bool, w string) string {
		return "The time of the " + pick(h, "court hearing ", "notarial act ") + w + " has changed."
	},
	timeSet: func(h bool, w string) string {
		return "The time of the " + pick(h, "court hearing ", "notarial act ") + w + " has been set."
	},
	withdrawn: func(h bool, w string) string {
		return "Your invitation to the " + pick(h, "court hearing ", "notarial act ") + w + " has been withdrawn."
	},
	mistake: func(h bool) string {
		return "If you believe this is a mistake, please contact " + pick(h, "the court.", "the notary.")
	},
	reminder: func(h bool, w, soon string) string {
		return "This is a reminder: the " + pick(h, "court hearing ", "notarial act ") + w + " begins " + soon + "."
	},
	inAbout: func(d time.Duration) string {
		n, unit := soon(d)
		if n != 1 {
			unit += "s"
		}
		return fmt.Sprintf("in about %d %s", n, unit)
	},
}

var estonian = tongue{
	lang:     Estonian,
	months:   [12]string{"jaanuar", "veebruar", "märts", "aprill", "mai", "juuni", "juuli", "august", "september", "oktoober", "november", "detsember"},
	weekdays: [7]string{"pühapäev", "esmaspäev", "teisipäev", "kolmapäev", "neljapäev", "reede", "laupäev"},
	dateFmt: func(wd string, day int, month string, year int, hm string) string {
		return fmt.Sprintf("%s, %d. %s %d, kell %s", wd, day, month, year, hm)
	},
	open: "„", close: "“",
	greeting: "Lugupeetud %s",
	subject: map[Kind]string{
		Invitation: "Kutse: %s",
		NewLink:    "Uus link: %s",
		Update:     "Uus aeg: %s",
		Cancel:     "Tühistatud: %s",
		Reminder:   "Meeldetuletus: %s",
	},
	role: "Teie roll", time: "Aeg", caseNo: "kohtuasi nr",
	newTime: "Uus aeg", oldTime: "Varasem aeg",
	toBeAnnounced:    "teatatakse hiljem; saate e-kirja, kui aeg on määratud",
	joinWith:         "Liituge oma isikliku lingiga:",
	personal:         "Link on ainult teile: igaüks, kellel see on, saab liituda teie nimel. Link kehtib kuni: %s.",
	advice:           "Avage see veidi enne algust kaamera ja mikrofoniga seadme ajakohases veebilehitsejas. Võimalik, et peate esmalt ootama ooteruumis, kuni teid sisse lastakse.",
	noLinkInCalendar: "Sellele kirjale lisatud kalendrikirje linki ei sisalda: hoidke see kiri alles.",
	linkStillValid:   "Kutsekirjas saadud isiklik link kehtib edasi. Lisatud kalendrikirje asendab varasema.",
	linkDead:         "Teile saadetud isiklik link enam ei tööta.",
	calendarRemoves:  "Lisatud kalendrikirje eemaldab sündmuse teie kalendrist.",
	useYourLink:      "Liituge kutsekirjas saadud isikliku lingiga. Kui te seda ei leia, küsige uut linki; vana link lakkab siis töötamast.",
	calendarNote:     "Liituge kutsekirjas saadud isikliku lingiga.",
	location:         "Veebis — link on kutsekirjas",
	roles: map[string]string{
		"judge": "kohtunik", "clerk": "kohtuistungi sekretär", "party": "menetlusosaline", "counsel": "esindaja",
		"witness": "tunnistaja", "interpreter": "tõlk", "observer": "vaatleja", "notary": "notar",
		"embassy_officer": "saatkonna ametnik", "principal": "tehingu pool",
	},
	acts: map[string]string{
		"will": "testament", "contract": "leping", "power_of_attorney": "volikiri",
		"property_sale": "kinnisasja võõrandamine", "other": "muu notariaalne toiming",
	},
	summary: func(h bool) string { return pick(h, "Kohtuistung", "Notariaalne toiming") },
	invited: func(h bool, w string) string {
		return "Teid kutsutakse osalema " + pick(h, "kohtuistungil ", "notariaalses toimingus ") + w + "."
	},
	newLink: func(h bool, w string) string {
		return "Teile on väljastatud uus isiklik link " + pick(h, "kohtuistungil ", "notariaalses toimingus ") + w +
			" osalemiseks. Varem saadud link enam ei tööta."
	},
	timeChanged: func(h bool, w string) string {
		return pick(h, "Kohtuistungi ", "Notariaalse toimingu ") + w + " aeg on muutunud."
	},
	timeSet: func(h bool, w string) string {
		return pick(h, "Kohtuistungi ", "Notariaalse toimingu ") + w + " aeg on määratud."
	},
	withdrawn: func(h bool, w string) string {
		return "Teie kutse " + pick(h, "kohtuistungile ", "notariaalsele toimingule ") + w + " on tühistatud."
	},
	mistake: func(h bool) string {
		return "Kui peate seda ekslikuks, võtke palun ühendust " + pick(h, "kohtuga.", "notariga.")
	},
	reminder: func(h bool, w, soon string) string {
		return "Tuletame meelde: " + pick(h, "kohtuistung ", "notariaalne toiming ") + w + " algab " + soon + "."
	},
	inAbout: func(d time.Duration) string {
		// After a numeral the genitive singular serves every number:
		// 1 tunni pärast, 24 tunni pärast.
		n, unit := soon(d)
		word := map[string]string{"minute": "minuti", "hour": "tunni", "day": "päeva"}[unit]
		return fmt.Sprintf("umbes %d %s pärast", n, word)
	},
}

var russian = tongue{
	lang:     Russian,
	months:   [12]string{"января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"},
	weekdays: [7]string{"воскресенье", "понедельник", "вторник", "среда", "четверг", "пятница", "суббота"},
	dateFmt: func(wd string, day int, month string, year int, hm string) string {
		return fmt.Sprintf("%s, %d %s %d г., %s", wd, day, month, year, hm)
	},
	open: "«", close: "»",
	greeting: "Здравствуйте, %s!",
	subject: map[Kind]string{
		Invitation: "Приглашение: %s",
		NewLink:    "Новая ссылка: %s",
		Update:     "Новое время: %s",
		Cancel:     "Отменено: %s",
		Reminder:   "Напоминание: %s",
	},
	role: "Ваша роль", time: "Время", caseNo: "дело №",
	newTime: "Новое время", oldTime: "Прежнее время",
	toBeAnnounced:    "будет сообщено дополнительно; вы получите письмо, когда время будет назначено",
	joinWith:         "Подключайтесь по своей персональной ссылке:",
	personal:         "Ссылка предназначена только для вас: любой, у кого она есть, может подключиться от вашего имени. Ссылка действительна до: %s.",
	advice:           "Откройте её незадолго до начала в современном браузере на устройстве с камерой и микрофоном. Возможно, сначала вам придётся подождать в зале ожидания, пока вас не допустят.",
	noLinkInCalendar: "Прилагаемая к письму запись календаря не содержит ссылки: сохраните это письмо.",
	linkStillValid:   "Персональная ссылка из письма-приглашения остаётся в силе. Прилагаемая запись календаря заменяет прежнюю.",
	linkDead:         "Полученная вами персональная ссылка больше не действует.",
	calendarRemoves:  "Прилагаемая запись календаря удалит событие из вашего календаря.",
	useYourLink:      "Подключайтесь по персональной ссылке из письма-приглашения. Если вы не можете её найти, запросите новую; старая ссылка тогда перестанет действовать.",
	calendarNote:     "Подключайтесь по персональной ссылке из письма-приглашения.",
	location:         "Онлайн — ссылка в письме-приглашении",
	roles: map[string]string{
		"judge": "судья", "clerk": "секретарь судебного заседания", "party": "сторона", "counsel": "представитель",
		"witness": "свидетель", "interpreter": "переводчик", "observer": "наблюдатель", "notary": "нотариус",
		"embassy_officer": "сотрудник посольства", "principal": "сторона сделки",
	},
	acts: map[string]string{
		"will": "завещание", "contract": "договор", "power_of_attorney": "доверенность",
		"property_sale": "отчуждение недвижимости", "other": "иное нотариальное действие",
	},
	summary: func(h bool) string {
		return pick(h, "Судебное заседание", "Нотариальное действие")
	},
	invited: func(h bool, w string) string {
		return "Вы приглашены принять участие в " + pick(h, "судебном заседании ", "нотариальном действии ") + w + "."
	},
	newLink: func(h bool, w string) string {
		return "Для вас выпущена новая персональная ссылка для участия в " + pick(h, "судебном заседании ", "нотариальном действии ") + w +
			". Полученная ранее ссылка больше не действует."
	},
	timeChanged: func(h bool, w string) string {
		return "Время " + pick(h, "судебного заседания ", "нотариального действия ") + w + " изменено."
	},
	timeSet: func(h bool, w string) string {
		return "Время " + pick(h, "судебного заседания ", "нотариального действия ") + w + " назначено."
	},
	withdrawn: func(h bool, w string) string {
		return "Ваше приглашение на " + pick(h, "судебное заседание ", "нотариальное действие ") + w + " отозвано."
	},
	mistake: func(h bool) string {
		return "Если вы считаете это ошибкой, пожалуйста, свяжитесь " + pick(h, "с судом.", "с нотариусом.")
	},
	reminder: func(h bool, w, soon string) string {
		return "Напоминаем: " + pick(h, "судебное заседание ", "нотариальное действие ") + w + " начнётся " + soon + "."
	},
	inAbout: func(d time.Duration) string {
		n, unit := soon(d)
		forms := map[string][3]string{
			"minute": {"минуту", "минуты", "минут"},
			"hour":   {"час", "часа", "часов"},
			"day":    {"день", "дня", "дней"},
		}[unit]
		return fmt.Sprintf("примерно через %d %s", n, forms[russianPlural(n)])
	},
}

// russianPlural picks the form after a number: 1, 21, 31 … take the first
// (час); 2–4, 22–24 … the second (часа); 5–20, 25–30 … and 11–14 the third
// (часов).
func russianPlural(n int) int {
	switch n10, n100 := n%10, n%100; {
	case n10 == 1 && n100 != 11:
		return 0
	case n10 >= 2 && n10 <= 4 && (n100 < 12 || n100 > 14):
		return 1
	}
	return 2
}
