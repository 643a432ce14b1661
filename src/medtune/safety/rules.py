"""The first screen: readable patterns per category, fast and auditable (a match names its rule).

The built-in rules look for intent (first person, a request for a method), not for topics: an exam question
about an overdose, "can sepsis kill people?", or "what is the maximum dose of acetaminophen?", must pass. Answers
get their own rules (instructions: "swallow ... to die", "slip it into her tea"), because an answer explains the
very words a request is refused for ("if you are thinking about taking pills to die, call 988"). The config adds
patterns per category (safety.rules, screening requests and answers); the category "allow" exempts matching text
from every screen, "emergency" adds emergency patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medtune.errors import ConfigError
from medtune.safety.verdict import CATEGORIES

# Words reused by several rules, kept readable.
PERSON = (r"(?:my\s+(?:husband|wife|partner|boyfriend|girlfriend|ex|roommate|room mate|boss|coworker|co-worker|"
          r"colleague|neighbou?r|baby|child|kid|son|daughter|mother|father|mom|mum|dad|step\w*|grand\w+|"
          r"brother|sister|teacher|patient|friend)|(?:the|a|an|that|this) (?:[\w-]+ )?(?:baby|child|kid|man|woman|"
          r"guy|girl|boy|patient|victim|person|adult|old (?:man|woman|lady))|someone|somebody|a person|him|her|them|"
          r"people|my family)")
CONTROLLED = (r"(?:oxy\w*|hydrocodone|vicodin|percocet|fentanyl|morphine|codeine|tramadol|methadone|heroin|"
              r"opioids?|opiates?|dilaudid|xanax|valium|klonopin|ativan|alprazolam|diazepam|clonazepam|"
              r"lorazepam|benzos?|benzodiazepines?|adderall|ritalin|vyvanse|amphetamines?|meth|ketamine|ghb|"
              r"cocaine|crack|lsd|mdma|ecstasy|lean|purple drank)")
SELF = r"(?:myself|my self|my own|on me|by myself|at home)"
DEATH = r"\b(?:die|dying|dead|fatal|lethal|bleed out)\b"
# one character of the same sentence that does not start a negation ("i didn't take them on purpose")
UNNEGATED = r"(?:(?!\b(?:not|never|didn'?t|don'?t|wasn'?t|won'?t|accident\w*)\b)[^.?!])"
# Someone asking for a way to do it (not asking whether or why a thing does it); the gap after it may not hold
# "if", "whether" or "why" ("how can I tell if this dose will kill her" asks about safety).
INTENT = (r"(?:\bhow (?:can|do|could|would|should|might) (?:i|we|one)\b|\bhow to\b|\bways? to\b|"
          r"\b(?:best|easiest|quickest|simplest|surest) way to\b|\b(?:help|teach|show) me\b|\btell me how\b|"
          r"\bi(?:'m| am)? (?:want|need|plan|intend|wish|mean|going|trying|have|gonna|wanna|about)\b|\bi'?d like to\b|"
          r"\bi(?: will|'ll)\b|\b(?:can|could|should) i\b)"
          r"(?:(?!\b(?:if|whether|why)\b).){0,40}")

BUILTIN: dict[str, list[str]] = {
    # an exam question: a case vignette that asks for the diagnosis, the mechanism or the next step; answered
    # however alarming the case ("keep the benign clinical over-refusal at 0%")
    "allow": [
        r"^\W*(?:an?|the)\s+(?:\d+|[a-z]+(?:-[a-z]+)?)[- ](?:year|month|week|day)[- ]old\b.{40,}\b(?:what|which)\b"
        r"[^.?]{0,40}\b(?:most (?:likely|appropriate|common|probable)|next (?:best )?step|best (?:next |initial )?"
        r"(?:step|treatment|management)|underlying (?:cause|mechanism)|mechanism|diagnosis)\b[^?]*\?\s*$",
        # a multiple-choice exam question as eval and the RL stage ask it: "Question: ... Options: A. ... B. ..."
        r"\bquestion\s*:.{10,}\boptions\s*:\s*a[.)]\s.{1,400}\bb[.)]\s",
    ],
    # an emergency that is no harmful request (someone else's poisoning, chest pain now): the layer gives the
    # emergency advice first, then the model's answer
    "emergency": [
        r"\b(?:i'?m|i am|i have|i've|having|my)\b.{0,30}\b(?:chest pain|chest (?:is )?(?:tight|crushing)|"
        r"crushing (?:pain|chest))\b.{0,80}\b(?:now|right now|started|minutes|spreading|radiat\w*|numb|"
        r"sweat\w*|can'?t breathe|short of breath|jaw|left arm)",
        r"\b(?:i|my \w+)\s+(?:can'?t|cannot|can not)\s+breathe\b",
        r"\b(?:my|our)\s+(?:child|son|daughter|baby|kid|toddler|husband|wife|friend|mom|mum|dad|father|mother)\b"
        r".{0,40}\b(?:swallowed|drank|ate|took)\b.{0,60}\b(?:bleach|pills?|tablets?|batter(?:y|ies)|detergent|"
        r"pods?|antifreeze|medicine|medication|poison|drain cleaner|rat poison)",
        r"\bmy \w+\s+(?:is|isn'?t|is not|won'?t)\s+(?:not breathing|breathing|unconscious|"
        r"unresponsive|wake up|waking up)\b",
    ],
    "self_harm": [
        # an overdose one has taken, or the intent to die now: the crisis message alone, not advice and an answer
        # (not "what if i took it twice", not "by accident": an accident is an emergency, no self-harm)
        r"(?<!\bif )\bi\s*(?:'ve|have)?\s*(?:just\s+)?(?:took|taken|swallowed|overdosed|od'?d)\b"
        r"(?![^.?!]*(?<!\bnot )(?<!n't )\b(?:by (?:accident|mistake)|accidentally)\b).{0,50}"
        r"\b(?:pills?|tablets?|caps(?:ules)?|bottle|overdose|too many|too much|whole|all of)",
        r"\bi\b.{0,25}\b(?:want to|going to|gonna|plan(?:ning)? to|will|about to|ready to|decided to)\s+"
        r"(?:kill myself|end (?:it all|my life|it tonight|things)|commit suicide|take my (?:own )?life|die tonight)",
        r"\b(?:kill|hang|shoot|drown|poison|suffocate|starve)\s+my\s?self\b",
        r"\b(?:end (?:my|my own) life|take my (?:own )?life)\b",
        r"\b(?:how (?:can|do|should|could|would) i|ways? to|best way to|help me|i (?:want|plan|need|am going) to)\s+"
        r"commit suicide\b",
        r"\b(?:painless|quick(?:est)?|easiest|best|surest|peaceful)\s+(?:way|method)s?\s+(?:to|of)\s+"
        r"(?:die|dying|suicide|end it)",
        r"\b(?:so (?:that )?i (?:can |will |would |could )?|for me to |i want to |i wanna |i need to |i'?d like to )"
        r"(?:die|don'?t wake up|do not wake up|never wake up|not wake up)\b",
        r"\b(?:pills?|tablets?|dose|amount|how many|how much)\b.{0,50}\b(?:to|so i|so that i)\s+(?:die|don'?t wake up|"
        r"never wake up|not wake up)\b",
        r"\b(?:hide|cover up|conceal)\b.{0,30}\b(?:cuts|scars|self[- ]harm|burns)\b.{0,30}\b(?:from|so)\b",
        r"\blethal (?:dose|amount)\b.{0,40}\b(?:for me|myself|i (?:weigh|am)|to take)\b",
        # lethality sought for an act of one's own: "i <do it> ... to die" ("... go on to die" is someone else's)
        r"\bi(?:'m| am)?\s+(?:(?:will|would|could|can|should|might|going to|gonna|want to|wanna|need to|have to|"
        r"plan to|just)\s+)*(?:jump|fall|cut|take|swallow|drink|inject|stop|skip|overdose|hang|drown|crash|starve)\b"
        r"[^.?!]{0,40}\b(?:to die|and die|so (?:that )?i(?:'ll| will)? die|and not survive|"
        r"to (?:be sure|make sure) i die)\b",
        # ... or its certainty ("guaranteed fatal if i jump"); not "is it definitely fatal if i stop chemo"
        r"\b(?:guaranteed|sure|definitely|certain(?:ly)?|100%)\s+(?:to be\s+|to\s+)?"
        r"(?:fatal|lethal|deadly|kill (?:me|you))\b.{0,30}\bif (?:i|you)\s+"
        r"(?:jump|take|swallow|drink|inject|cut|hang|fall|step|drive|overdose)\b",
        # ... or an act of one's own done on purpose, with death in the same sentence; not "i didn't ... on purpose"
        r"\bi\b" + UNNEGATED + r"{0,40}\b(?:on purpose|deliberately|intentionally)\b[^.?!]{0,60}" + DEATH,
        DEATH + r"[^.?!]{0,60}\bi\b" + UNNEGATED + r"{0,40}\b(?:on purpose|deliberately|intentionally)\b",
        # asking where or how to cut for the most blood
        r"\b(?:where|how|which|what)\b[^.?!]{0,40}\b(?:cut|slit|slice|slash)\w*\b[^.?!]{0,40}"
        r"\b(?:bleeds? (?:the )?most|bleed (?:out|faster)|the most blood|deep enough to (?:die|kill|bleed out))\b",
    ],
    "harm_to_others": [
        INTENT + r"\b(?:poison|drug|sedate|smother|strangle|suffocate|kill|murder|stab|choke|throttle)\s+" + PERSON,
        r"\b(?:slip|put|spike|mix|crush|add|sneak)\b.{0,50}\b(?:in|into)\s+(?:his|her|their|my \w+'?s?)\s+"
        r"(?:drink|coffee|tea|food|meal|soup|juice|bottle|formula)\b",
        r"\buntraceable\s+(?:poison|drug|way to kill)",
        # how much kills, together with how not to be found out: never a clinical question
        r"\b(?:lethal|fatal|deadly)\b.{0,80}\b(?:undetect\w*|(?:not|never|without) (?:be(?:ing)? )?(?:detected|noticed|"
        r"found|traced)|(?:least|less|hard(?:est)? to|difficult to) (?:detect\w*|trace\w*)|avoid (?:it )?being "
        r"(?:noticed|detected)|(?:escape|evade|fool|beat) (?:an? |the )?(?:autopsy|toxicology|tox screen))",
        r"\b(?:make|look)\b.{0,20}\b(?:it|his death|her death|their death)\s+look like\s+(?:an accident|"
        r"natural causes|a heart attack|suicide|an overdose)",
        r"\b(?:how much|what dose of|what amount of)\b.{0,40}\b(?:would|will|to|could)\s+kill\s+" + PERSON,
        r"\b(?:infect|give)\s+" + PERSON + r"\s+(?:with\s+)?(?:hiv|aids|herpes|hepatitis|covid|a disease)\s+"
        r"on purpose",
    ],
    "controlled_drugs": [
        CONTROLLED + r"\b.{0,60}\bwithout (?:a |any )?(?:prescription|script|rx|doctor)",
        r"\bwithout (?:a |any )?(?:prescription|script|rx)\b.{0,40}\b" + CONTROLLED + r"\b",
        r"(?:" + INTENT + r"|\b(?:i|we)\b.{0,30})\b(?:get|getting|feel|stay)\s+(?:high|stoned|wasted|messed up|"
        r"f\w*ed up)\b(?!\s+(?:blood|fever|temperature|cholesterol|pressure|sugar|levels?|doses?|risk|altitude|"
        r"scores?|marks|grades))",
        r"\b(?:make|cook|synthesi[sz]e|brew|produce)\s+(?:my own\s+)?(?:meth|crack|ghb|lsd|dmt|fentanyl|heroin)\b",
        r"\bextract\w*\s+(?:the\s+)?(?:codeine|morphine|opium|dxm)\b",
        r"\b(?:snort|inject|shoot up|smoke|plug)\s+(?:my\s+|crushed\s+)*(?:" + CONTROLLED[3:-1] + r"|pills?|tablets?)",
        r"\b(?:fake|exaggerate|pretend to have|lie about)\b.{0,30}\b(?:pain|symptoms|adhd|anxiety|injury)\b"
        r".{0,40}\b(?:get|prescri\w*)\b",
        r"\bsell\s+(?:my\s+)?(?:leftover\s+)?" + CONTROLLED + r"\b",
    ],
    "diy_procedures": [
        r"\b(?:perform|do)\s+(?:a\s+|an\s+|my own\s+)?(?:surgery|operation|appendectomy|c-section|abortion)\s+"
        r"(?:on\s+)?" + SELF,
        r"\b(?:set|reset|realign|relocate)\s+(?:my own|my)\s+(?:broken|fractured|dislocated)\b",
        r"\b(?:pull|extract|yank)\s+(?:out\s+)?my own\s+(?:\w+\s+)?(?:tooth|teeth)\b",
        r"\bwith\s+(?:a\s+|my\s+)?(?:kitchen knife|razor(?: blade)?|pliers|sewing needle|box cutter|"
        r"scalpel i bought)\b.{0,20}$",
        r"\b(?:stitch|suture|sew)\s+(?:up\s+)?(?:my own|myself|my)\b.{0,30}\b(?:wound|cut|gash|laceration)\b"
        r".{0,30}\b(?:myself|at home|sewing|fishing)",
    ],
    "falsified_records": [
        # (the verb, not "a forged prescription": how a pharmacist spots one is a fair question)
        r"(?<!\ba )(?<!\ban )(?<!\bthe )\b(?:fake|forge[ds]?|forging|falsify|falsified|counterfeit|fabricate[ds]?|"
        r"backdate[ds]?)\s+(?:a\s+|an\s+|"
        r"my\s+|the\s+|his\s+|her\s+)?(?:\w+\s+){0,2}(?:doctor'?s? note|sick note|medical (?:certificate|note|"
        r"record|report)s?|prescriptions?|scripts?|lab (?:result|report)s?|test results?|vaccin\w* "
        r"(?:card|record|certificate)s?|charts?|signatures?|discharge summar(?:y|ies)|disability (?:claim|form))",
        r"\b(?:write|make|create|draft)\s+(?:me\s+)?(?:a\s+)?(?:fake|false|forged)\s+(?:\w+\s+)?(?:note|certificate|"
        r"prescription|record|result)",
        # a fake document wanted: "I need a fake doctor's note", "where can I buy a fake vaccination card"
        r"\b(?:need|want|buy|get|order|purchase|find|where (?:can|do) i (?:get|buy|find)|can you (?:get|make|write|"
        r"send))\b[^.?!]{0,20}\b(?:a|an|some|me a|me an)\s+(?:fake|forged|counterfeit|falsified|backdated|false)\s+"
        r"(?:[\w']+\s+){0,2}(?:notes?|certificates?|prescriptions?|scripts?|cards?|records?|results?|reports?|"
        r"letters?|passe?s?)\b",
        r"\b(?:pass|beat|cheat)\s+(?:a|my|the)\s+(?:drug|urine) test\b",
        r"\b(?:alter|change|edit|doctor)\s+(?:my|the|his|her)\s+(?:blood |lab |pathology |drug )?(?:test )?"
        r"(?:results?|report)\b.{0,40}\b(?:before|so (?:it|they)|to (?:show|say|hide))",
        # a real prescription altered behind the pharmacist's back (not "my doctor changed the dose")
        r"\b(?:change|alter|edit|modify|doctor|tweak|amend|turn)\b.{0,60}\b(?:prescription|script|rx)\b.{0,80}"
        r"\b(?:without (?:the pharmacist|the pharmacy|anyone|them|it being) (?:notic|know|spott|realis|realiz|"
        r"detect|catch)\w*|so (?:that )?(?:the pharmacist|the pharmacy|it|they|nobody|no one) (?:doesn'?t|don'?t|"
        r"won'?t|will not|does not|can'?t) (?:notice|spot|realise|realize|know|tell)|so (?:that )?it (?:passes|goes "
        r"through|gets accepted|looks real)|before i (?:take|hand|bring) it (?:to|in))",
    ],
    "misinformation": [
        r"\b(?:write|draft|create|make|produce|compose)\b.{0,60}\b(?:post|article|blog|flyer|pamphlet|tweets?|"
        r"thread|ad|advert\w*|script|story|essay|leaflet|newsletter|testimonials?)\b.{0,80}\b(?:vaccines? "
        r"(?:cause|causes|are dangerous)|cures? (?:cancer|diabetes|hiv|autism|covid)|stop (?:taking )?(?:their |"
        r"your )?(?:medication|medicine|insulin|chemo\w*|antidepressants)|(?:is|are) (?:a )?(?:hoax|poison)|"
        r"instead of (?:chemo\w*|insulin|vaccin\w*|medic\w*))",
        r"\b(?:make up|fabricate|invent)\s+(?:a\s+|some\s+)?(?:clinical\s+)?(?:study|studies|trial|statistics|"
        r"data|results)\b",
    ],
}


# Something taken, given or injected by accident, and what to do now (en, es, fr, de, pt, it): an emergency, and a
# careful request.
# (the lookaheads start at the text's start: tried at every position, they would read a long text once per character)
ACCIDENT_NOW = (r"^(?=[\s\S]*?\b(?:took|taken|swallowed|drank|gave|given|injected|double dose|twice|tom[ée]|tomou|"
                r"tomei|trag[óo]|bebi[óo]|d[ií] |di[óo]|inyect\w*|pris|aval[ée]|bu|donn[ée]|inject[ée]|genommen|"
                r"geschluckt|getrunken|gegeben|gespritzt|engoli\w*|bebeu|dei|injet\w*|preso|ingoiat\w*|bevuto|dato|"
                r"iniettat\w*|doppia dose|"
                r"dosis doble|dose dupla|deux fois|zweimal|pastillas?|comprim\w+|tabletten?|pills?|tablets?|pastiglie|"
                r"farmac\w+|medic\w+|rem[ée]dio|adrenalin\w*|insulin\w*|bleach|lej[ií]a|javel|candeggina)\b)"
                r"[\s\S]*?\b(?:by (?:accident|mistake)|accidentally|sin querer|por (?:accidente|error|equivocaci[óo]n)|"
                r"par (?:erreur|accident|m[ée]garde)|accidentellement|aus versehen|versehentlich|sem querer|"
                r"por engano|per (?:sbaglio|errore)|accidentalmente)\b.{0,200}\b(?:what (?:do|should) i do|what now|"
                r"right now|qu[eé] hago|qu[eé] tengo que hacer|que (?:dois-je|faut-il|faire)|qu'est-ce que je (?:fais|"
                r"dois faire)|was (?:muss|soll) ich (?:jetzt )?(?:sofort )?tun|was tun|o que (?:eu )?(?:fa[çc]o|devo "
                r"fazer)|cosa (?:devo )?fa(?:re|ccio)|che faccio)\b")
# Words the rules in other languages share (es, fr, de, pt, it), kept readable.
LETHAL_ML = (r"(?:mortal(?:es)?|letal(?:es)?|mortel(?:le)?s?|l[ée]tal(?:e|es)?|t[öo]dlich\w*|letale|mortale|"
             r"fatal(?:e|es)?)")
AMOUNT_ML = (r"(?:dosis|dose|dosi|dosage|quantit[ée]|quantità|cantidad|quantidade|menge|combien|cu[aá]nt[oa]s?|"
             r"quant[oa]s?|quant[ei]|wie viele?|ab welcher)")
FOR_ME_ML = r"(?:para m[ií]|pour moi|f[üu]r mich|per me|pra mim|para mim)"
ENOUGH_ML = (r"(?:ob (?:das|es|die) (?:reicht|reichen|genügt)|(?:si|est-ce que) (?:ça|cela|c'est) (?:suffit|suffisant)|"
             r"(?:si|se) (?:es|ser[áa]|é|for|è|sar[àa]) (?:suficiente|sufficiente|bastante)|si (?:me )?alcanza|"
             r"se (?:basta|bastano|chega))")
# a way of ending one's life asked for by its certainty, speed or painlessness ("la plus sûre pour en finir")
SUREST_ML = (r"(?:m[aá]s (?:segur[oa]|r[aá]pid[oa]|f[aá]cil|efica[zc])|menos doloros[oa]|sin dolor|la plus (?:s[uû]re|"
             r"rapide|simple|efficace|douce)|le plus (?:s[uû]r|rapide|simple|efficace)|sans (?:souffrir|douleur)|"
             r"sicherste\w*|schnellste\w*|einfachste\w*|schmerzlos\w*|mais (?:segur[oa]|r[aá]pid[oa]|f[aá]cil)|sem dor|"
             r"pi[uù] (?:sicur[oa]|rapid[oa]|facile|efficace)|meno doloros[oa]|indolore)")
END_IT_ML = (r"(?:en finir|mourir|me tuer|me suicider|morir(?:me)?|matarme|suicidarme|acabar con (?:todo|mi vida)|"
             r"(?:zu )?sterben|mich (?:umzubringen|zu töten)|es zu beenden|morrer|me matar|acabar com (?:tudo|a minha "
             r"vida)|morire|uccidermi|suicidarmi|farla finita)")
POISON_ML = (r"(?:gift\w*|vergift\w*|veneno\w*|envenen\w*|poison\w*|empoisonn\w*|veleno\w*|avvelen\w*|"
             r"obduktion|autops\w*|toxikolog\w*|toxicolog\w*|tossicolog\w*)")
# that nothing is found / the pharmacist does not notice (a concealment clause)
NOTHING_FOUND_ML = (r"(?:nichts (?:findet|gefunden|nachweist|merkt)|no (?:encuentren|se encuentre|encuentre|detecten) "
                    r"nada|ne trouve rien|rien ne soit (?:trouvé|détecté)|n'y voie que du feu|n[ãa]o (?:encontrem|se "
                    r"encontre|achem|detectem) nada|nada seja (?:encontrado|detectado)|non (?:trovino|si trovi|"
                    r"rilevino) (?:niente|nulla))")
HARD_TO_DETECT_ML = (r"(?:schwer(?:sten|er)? (?:nachzuweisen|nachweisbar|zu entdecken|zu finden)|nicht nachweisbar|"
                     r"nicht (?:routinemäßig )?(?:gesucht|getestet)|dif[ií]ci(?:l|les|is) de (?:detectar|rastrear)|"
                     r"indetectables?|indetect[áa]ve(?:l|is)|difficiles? [àa] (?:d[ée]tecter|d[ée]celer)|"
                     r"ind[ée]tectables?|difficil[ei] da (?:rilevare|individuare|trovare)|non rilevabil\w*)")
UNNOTICED_ML = (r"(?:sin que|sans que|ohne dass|sem que|senza che|pour que (?:ça|cela|elle|il) passe|"
                r"para que (?:pase|cuele|no se (?:note|den cuenta))|"
                r"damit (?:es|das|sie|er) (?:durchgeht|nicht auffällt)|"
                r"para (?:que )?pass(?:e|ar)|perch[ée] (?:passi|non se ne accorg\w*)|che (?:passi|non se ne accorg\w*)|"
                r"sans (?:que )?(?:ça|cela) se voi\w*)")
PRESCRIPTION_ML = r"(?:receta|receita|ordonnance|rezept\w*|ricetta|prescri\w*)"
CONTROLLED_ML = (r"(?:oxicodona|oxycodone|oxycodon|ossicodone|morfina|morphine|morphin|fentanilo|fentanil|fentanyl\w*|"
                 r"code[ií]na|cod[ée]ine|kodein|codeina|tramadol|metadona|m[ée]thadone|methadon|metadone|hero[ií]na|"
                 r"h[ée]ro[ïi]ne|heroin|eroina|hidromorfona|hydromorphone|hydromorphon|idromorfone|buprenorfina|"
                 r"alprazolam|diazepam|lorazepam|clonazepam|rivotril|trankimazin|lexomil|xanax|valium|tavor|"
                 r"benzodiazep\w*|opio[ií]de\w*|opiac[ée]\w*|oppioid\w*|opioide?|ketamin[ae]?|metilfenidato|"
                 r"m[ée]thylph[ée]nidate|methylphenidat|ritalin\w*|anfetamin\w*|amph[ée]tamin\w*|amphetamin\w*)")
DOCUMENT_ML = (r"(?:receta|receita|ordonnance|rezept|ricetta|certificado|certificat|zertifikat|atestado|certificato|"
               r"attestation|attestato|krankschreibung|bescheinigung|impfpass|justificante|baja|laudo|"
               r"arbeitsunfähigkeitsbescheinigung|gesundheitszeugnis|attest)")
FAKE_ML = r"(?:falsa|falso|faux|fausse|gefälscht\w*|falsche[nrs]?|falsificad[oa]|falsifi[ée]e?)"
WANT_ML = (r"(?:hacer|conseguir|comprar|necesito|quiero|faire|obtenir|acheter|avoir|besoin d'une|je veux|machen|kaufen|"
           r"bekommen|brauche|will|fazer|preciso|quero|fare|comprare|ottenere|avere|bisogno|voglio|d[oó]nde|où|wo|onde|"
           r"dove)")
NO_WHETHER_ML = r"(?:(?!\b(?:si|se|ob|que|saber|savoir|wissen|sapere)\b|\bqu')[^.?!])"  # not "whether it is fake"
HOW_I_ML = r"(?:c[oó]mo|comment|wie|come|puedo|posso|peux|pourrais|kann ich|podr[ií]a|potrei|je vais|voy a|vou)"
CHANGE_ML = (r"(?:cambi\w*|modific\w*|alter\w*|chang\w*|(?:ab)?änder\w*|mud\w*|raspar|borr\w*|radier\w*|trucar|"
             r"retoc\w*|bidouill\w*|manipul\w*|scanner|scannen|escanear|escanear|scansionare|falsch eintragen)")

# The highest-risk intents in Spanish, French, German, Portuguese and Italian: ending one's own life or the amount
# that would, poisoning another person or hiding it, forged prescriptions. Written for the first person and a
# request for a way, as the English ones; clinical questions in these languages ("dosis máxima", "Überdosis
# Behandlung") do not match.
MULTILINGUAL: dict[str, list[str]] = {
    "emergency": [
        # my child / partner / mother swallowed pills, bleach, a battery (es, fr, de, pt, it)
        r"\b(?:mi|mon|ma|mein\w*|meu|minha|mio|mia|il mio|la mia|o meu|a minha)\s+(?:hij[oa]|beb[ée]|niñ[oa]|"
        r"marido|mujer|madre|padre|fils|fille|b[ée]b[ée]|enfant|mari|femme|m[èe]re|p[èe]re|sohn|tochter|kind|baby|"
        r"mann|frau|mutter|vater|filh[oa]|crian[çc]a|esposa|m[ãa]e|pai|figli[oa]|bambin[oa]|moglie|madre|padre)\b"
        r".{0,40}\b(?:se (?:ha )?trag[óo]|(?:se )?ha tragado|trag[óo]|se ha tomado|a aval[ée]|a pris|hat\b.{0,40}"
        r"\b(?:geschluckt|getrunken|gegessen)|engoliu|comeu|bebeu|tomou|ha ingoiato|ha (?:mangiato|bevuto|preso))\b"
        r".{0,60}\b(?:pastillas|comprimidos|pilules|comprim[ée]s|m[ée]dicaments|tabletten|medikamente|rem[ée]dios|"
        r"pastiglie|pillole|lej[ií]a|javel|bleichmittel|candeggina|pila|pilhas|piles?|batter\w*|medicinas)",
        # ... is not breathing / is unconscious (es, fr, de, pt, it)
        r"\b(?:no respira|est[áa] inconsciente|ne respire (?:plus|pas)|est inconscient|atmet nicht|ist bewusstlos|"
        r"n[ãa]o (?:est[áa] )?respira(?:ndo)?|est[áa] inconsciente|non respira|[èe] incosciente|(?:ist|est) "
        r"nicht ansprechbar)\b",
        # something done by accident, and what to do now (en, es, fr, de, pt, it)
        ACCIDENT_NOW,
    ],
    "self_harm": [
        # es, pt: suicidarme, matarme, quitarme / tirar a minha vida; fr: me suicider, mettre fin à mes jours;
        # de: mich umbringen, mir das Leben nehmen; it: uccidermi, togliermi la vita, suicidarmi
        # (not "va me tuer", "vai me matar": someone else who "will kill me" is a figure of speech)
        r"\b(?<!va )(?<!vai )(?<!vont )(?<!vão )(?<!par )(?:suicidarme|matarme|quitarme la vida|acabar con mi vida|"
        r"me suicidar|me matar|tirar (?:a )?minha (?:própria )?vida|acabar com (?:a )?minha vida|me suicider|me tuer|"
        r"mettre fin à mes jours|"
        r"mich (?:umbringen|töten|selbst töten)|mir das leben nehmen|meinem leben ein ende|"
        r"uccidermi|suicidarmi|togliermi la vita|farla finita)\b",
        # how many pills / what dose ... to die / not wake up (es, pt, fr, de, it)
        r"\b(?:cu[aá]ntas?|qu[eé] (?:dosis|cantidad)|quantos?|quantas?|que dose|combien|quelle dose|wie viele|"
        r"welche dosis|quante?|quanti|che dose)\b.{0,60}\b(?:para (?:morir|no despertar(?:me)?|n[aã]o acordar|"
        r"morrer)|pour (?:mourir|ne plus me réveiller|ne pas me réveiller)|um (?:zu sterben|nicht mehr "
        r"aufzuwachen)|per (?:morire|non svegliarmi))",
        r"\b(?:dosis|dose|quantit[eé]|menge|quantità)\s+(?:letal|létale|mortal|mortelle|tödliche?|letale|mortale)\b"
        r".{0,40}\b(?:para m[ií]|pour moi|für mich|per me|yo peso|je pèse|ich wiege|io peso|eu peso)\b",
        # where to cut (es, pt, fr, de, it)
        r"\b(?:d[oó]nde|onde|où|wo|dove)\b.{0,30}\b(?:cortarme|me cortar|me couper|mich (?:zu )?schneiden|"
        r"tagliarmi)\b",
        # the amount that would be lethal for me ("quelle dose ... serait mortelle pour moi")
        r"\b" + AMOUNT_ML + r"\b[^.?!]{0,60}\b(?:" + LETHAL_ML + r"\b[^.?!]{0,30}" + FOR_ME_ML + r"|" + FOR_ME_ML
        + r"[^.?!]{0,30}\b" + LETHAL_ML + r")\b",
        r"\b" + FOR_ME_ML + r"\b[^.?!]{0,30}\b" + LETHAL_ML + r"\b[^.?!]{0,40}\b" + AMOUNT_ML + r"\b",
        # lethal, and whether what one has is enough ("sicher tödlich? ... ob das reicht")
        r"\b" + LETHAL_ML + r"\b.{0,120}\b" + ENOUGH_ML,
        r"\b" + ENOUGH_ML + r".{0,60}\b" + LETHAL_ML + r"\b",
        # the surest, quickest or painless way to end it ("la méthode la plus sûre pour en finir")
        r"\b" + SUREST_ML + r"[^.?!]{0,30}\b(?:de|pour|para|um|per|di|a)\s+(?:\w+\s+)?" + END_IT_ML + r"\b",
        r"\b(?:m[ée]thode|moyen|fa[çc]on|mani[èe]re|m[ée]todo|manera|forma|modo|methode|weg|maneira|jeito|metodo)\b"
        r"[^.?!]{0,30}\b" + SUREST_ML,
    ],
    "harm_to_others": [
        # poison my husband/wife/... (es, pt, fr, de, it)
        r"\b(?:envenenar|envenenarl[oa]|empoisonner|vergiften|avvelenare)\s+(?:a\s+|à\s+)?(?:mi|mon|ma|mein\w*|"
        r"meu|minha|mio|mia|il mio|la mia|o meu|a minha|su|sua|son|sa|seine?n?|ihre?n?)\b",
        # German puts the person first: "meinen Mann vergiften", "wie kann ich sie vergiften"
        r"\b(?:wie|womit)\b.{0,30}\b(?:meine?n?|seine?n?|ihre?n?|sie|ihn)\b.{0,25}\bvergiften\b",
        # that the autopsy / analysis does not detect (es, pt, fr, de, it)
        r"\b(?:que no (?:se )?detecte|sin que se note|que (?:não|nao) (?:se )?detecte|sem ser detectad[oa]|"
        r"indétectable|sans (?:laisser de )?traces?|qui ne se voit pas|nicht nachweisbar|unauffindbar|"
        r"ohne dass man es (?:merkt|nachweist)|non rilevabile|senza (?:lasciare )?tracce|che non si (?:veda|noti))\b"
        r".{0,60}\b(?:autopsia|autopsie|obduktion|analisi|análisis|análise|analyse|tossicolog\w*|toxicolog\w*)",
        r"\b(?:autopsia|autopsie|obduktion)\b.{0,60}\b(?:no (?:lo )?detecte|não detecte|ne (?:le )?détecte pas|"
        r"nicht (?:entdeckt|nachgewiesen)|non (?:lo )?rilevi)\b",
        # poisons or an autopsy, and that nothing be found ("dass man bei meinem Chef nichts findet")
        r"\b" + POISON_ML + r"\b.{0,160}\b" + NOTHING_FOUND_ML,
        r"\b" + NOTHING_FOUND_ML + r".{0,160}\b" + POISON_ML + r"\b",
        # how much is lethal, with what is hardest to detect (the English rule's twin)
        r"\b" + LETHAL_ML + r"\b.{0,100}\b" + HARD_TO_DETECT_ML,
        r"\b" + HARD_TO_DETECT_ML + r".{0,100}\b" + LETHAL_ML + r"\b",
    ],
    "controlled_drugs": [
        # symptoms invented or exaggerated to be given a drug ("qué síntomas me invento para que me pongan tramadol")
        r"(?:\b(?:me invento|invent(?:o|ar|e|er|are)|finjo|fing(?:ir|ere)|simul(?:o|ar|er|are|e)|exager(?:o|ar|er)|"
        r"esager(?:o|are)|vorzutäuschen|vortäuschen|erfinden|übertreiben|feindre|fais semblant|faire semblant)\b"
        r".{0,40}\b(?:s[ií]ntomas?|sintomas?|sympt[oô]mes?|symptome?n?|sintom[oi]|dolor(?:es)?|dor(?:es)?|douleurs?|"
        r"schmerzen|dolor[ei]|dolore)\b|\b(?:s[ií]ntomas?|sintomas?|sympt[oô]mes?|symptome?n?|sintom[oi]|dolor(?:es)?|"
        r"douleurs?|schmerzen|dolori)\b.{0,20}\b(?:me invento|invent(?:o|ar|e|er|are)|finjo|fing(?:ir|ere)|"
        r"simul(?:o|ar|er|are|e)|vortäuschen|erfinden|feindre))"
        r".{0,80}\b(?:para que (?:me )?(?:pongan|den|receten|prescriban|deem|dêem|receitem)|pour (?:qu'on|que le "
        r"m[ée]decin|qu'il|qu'elle) (?:me )?(?:donne|prescrive)|pour (?:avoir|obtenir)|"
        r"damit (?:man |der arzt |sie |er )?mir|zu (?:bekommen|kriegen)|para (?:conseguir|obter|ganhar|ter|"
        r"me receitarem)|per (?:avere|ottenere|farmi)|"
        r"che mi (?:diano|prescrivano))",
        # several doctors or hospitals without them knowing of each other ("sem que um saiba do outro")
        r"\b(?:varios|distintos|otros|diferentes|plusieurs|diff[ée]rents|autres|mehrere\w*|verschiedene\w*|andere\w*|"
        r"v[áa]rios|outros|diversi|altri)\s+(?:m[ée]dicos|hospitales|urgencias|m[ée]decins|h[ôo]pitaux|urgences|"
        r"[äa]rzte\w*|krankenh[äa]user\w*|notaufnahmen|hospitais|medici|ospedali|pronto soccorsi)\b.{0,80}"
        r"(?:\b(?:sin que|sans que|ohne dass|sem que|senza che)\b|no quiero que crucen|que no (?:crucen|se enteren))",
        # the English rules' twins: snorting or extracting an opioid, making meth or fentanyl, reselling them
        r"\b(?:esnifar\w*|snifar\w*|sniffer|snifer|sniffare|sniffarl\w*|schnupfen|cheirar|inhalar|inyectar(?:me|se)?|"
        r"m'injecter|spritzen|injetar|iniettar\w*|extra(?:er|ire|ir|hieren|rre)|estrarre|estrae|extrai)\b.{0,60}\b"
        + CONTROLLED_ML,
        r"\b" + CONTROLLED_ML + r".{0,80}\b(?:esnifar\w*|sniffer|sniffare|sniffarl\w*|schnupfen|cheirar)\b",
        r"\b(?:fabricar|sintetizar|cocinar|hacer|fabriquer|synth[ée]tiser|produire|herstell\w*|synthetisier\w*|kochen|"
        r"produzir|fazer|produrre|sintetizzare|cucinare)\b.{0,60}\b(?:metanfetamina|m[ée]thamph[ée]tamine|"
        r"methamphetamin|crystal meth|fentanilo|fentanil|fentanyl|hero[ií]na|h[ée]ro[ïi]ne|heroin|eroina|ghb|"
        r"mdma|lsd)\b",
        # German's separable verb: "wie stellt man aus ... Methamphetamin her"
        r"\bstell(?:t|e|en|st)\b.{0,60}\b(?:methamphetamin|crystal|fentanyl|heroin)\b.{0,40}\bher\b",
        r"\b(?:revender|revendre|weiterverkaufen|rivendere|vender|vendre|verkaufen|vendere)\b.{0,60}\b"
        + CONTROLLED_ML,
    ],
    "falsified_records": [
        # forge / fake a prescription (es, pt, fr, de, it)
        r"\b(?:falsificar|falsifier|fälschen|falsificare|hacer una receta falsa|faire une fausse ordonnance)\b"
        r".{0,30}\b(?:receta|receita|ordonnance|rezept|ricetta|prescri\w*)\b",
        # a forged prescription or certificate wanted (not how a pharmacist spots one, not whether one is forged)
        r"\b" + WANT_ML + r"\b" + NO_WHETHER_ML + r"{0,30}\b" + DOCUMENT_ML + r"\b" + NO_WHETHER_ML + r"{0,30}\b"
        + FAKE_ML + r"\b",
        r"\b" + WANT_ML + r"\b" + NO_WHETHER_ML + r"{0,30}\b" + FAKE_ML + r"\s+(?:\w+\s+)?" + DOCUMENT_ML + r"\b",
        # a real prescription altered so that the pharmacist does not notice ("cómo cambio el 0,5 por un 2 ...
        # sin que el farmacéutico se dé cuenta"; not "my doctor changed the dose")
        r"\b" + PRESCRIPTION_ML + r"\b.{0,150}\b" + HOW_I_ML + r"\b.{0,60}\b" + CHANGE_ML + r"\b.{0,100}"
        + UNNOTICED_ML,
        r"\b" + HOW_I_ML + r"\b.{0,60}\b" + CHANGE_ML + r"\b.{0,60}\b" + PRESCRIPTION_ML + r"\b.{0,100}"
        + UNNOTICED_ML,
    ],
}
for _category, _patterns in MULTILINGUAL.items():
    BUILTIN[_category] = [*BUILTIN[_category], *_patterns]

# What someone in crisis says about themselves (not a request): earlier in a conversation, it makes a later
# question about an amount, a dose or a method get crisis resources (safety/layer.py). English, Spanish, French,
# German, Portuguese, Italian.
CRISIS_SIGNALS = re.compile(
    r"\b(?:i (?:just )?(?:want|wanna|wish) to die|i want to (?:end (?:it|my life|things)|disappear for good)|"
    r"kill myself|end it all|(?:better|best) off without me|"
    r"(?:no ?one|nobody|no one) (?:would|will)(?: \w+)? (?:miss|notice|care)|"
    r"no (?:reason|point) (?:to|in) (?:live|living|go on|going on)|can'?t (?:go on|do this anymore|take (?:it|this) "
    r"anymore)|(?:don'?t|do not) want to (?:be here|live|be alive|wake up)|(?:wrote|written|writing|left) (?:my |the )?"
    r"(?:goodbye|suicide|farewell) (?:letters?|notes?)|i'?m done with (?:life|everything|it all)|"
    r"(?:giving|gave) away my (?:things|stuff|belongings)|hurt(?:ing)? myself|cut(?:ting)? myself|"
    r"(?:thinking (?:about|of)|urge to|urges to) (?:cutting|hurting myself|killing myself|ending it|dying|suicide)|"
    r"(?:saving|stockpiling|hoarding|collecting) (?:up )?(?:my |all my )?(?:\w+ )?(?:pills|tablets|meds|medication)|"
    r"(?:saving|stockpiling|hoarding) up my \w+|(?:just |never |not )(?:stay asleep|wake up again)|"
    r"quiero morir(?:me)?|no quiero (?:vivir|seguir)|matarme|suicidarme|nadie me echar[ií]a de menos|"
    r"estar[ií]an mejor sin m[ií]|no aguanto m[aá]s|carta de despedida|acabar con todo|je veux mourir|"
    r"envie de mourir|me suicider|personne ne me regretterait|mieux sans moi|je n'en peux plus|lettres? d'adieu|"
    r"en finir|ich (?:will|möchte) (?:sterben|nicht mehr leben)|mich umbringen|niemand würde mich vermissen|"
    r"besser ohne mich|abschiedsbrief\w*|ich kann nicht mehr|quero morrer|me matar|ningu[ée]m sentiria (?:a )?minha "
    r"falta|melhor sem mim|n[ãa]o aguento mais|acabar com tudo|voglio morire|uccidermi|nessuno sentirebbe la mia "
    r"mancanza|meglio senza di me|non ce la faccio pi[uù]|lettera d'addio|farla finita)\b", re.IGNORECASE)


# Someone at risk of suicide or self-harm, in the first or the third person ("my friend says she wants to die",
# "je pense à mourir"), in the six languages; with HELP_SOUGHT, a request for help for them (layer.py).
AT_RISK = re.compile(
    r"\b(?:suicid\w*|self[- ]?harm\w*|kill(?:ing)? (?:himself|herself|themselves|myself)|end(?:ing)? (?:his|her|their|"
    r"my) (?:own )?life|wants? to die|want(?:s|ed)? to end it|thoughts? (?:of|about) (?:dying|death|ending it)|"
    r"cutting (?:himself|herself|themselves|myself)|matarse|se quiere matar|quitarse la vida|quiere morir|"
    r"autolesi\w*|se tuer|veut mourir|(?:pense|penser|pensées?) (?:à|de) mourir|en finir|scarifi\w*|umbringen|"
    r"sterben (?:will|möchte)|suizid\w*|selbstverletz\w*|ritzt|se matar|quer morrer|tirar a (?:própria )?vida|"
    r"automutila\w*|uccidersi|vuole morire|togliersi la vita|autolesionis\w*|pensieri di morte|"
    # ... or who took too much and wants to live
    r"(?:don'?t|do not) want to die|no quiero morir\w*|n[ãa]o quero morrer|non voglio morire|je ne veux pas mourir|"
    r"ich will nicht sterben)", re.IGNORECASE)
HELP_SOUGHT = re.compile(
    r"\b(?:who (?:can|should|do|could) (?:i|we) (?:call|ring|phone|contact|talk to|speak to|turn to|tell)|"
    r"who to (?:call|ring|phone|contact|talk to|turn to)|"
    r"(?:n[uú]mero|num[ée]ro|nummer|numero|tel[eé]fono|telefone|hotline|helpline|line)\b.{0,40}\b(?:llam\w*|ligar|"
    r"appeler|anrufen|chiamar\w*|call|ring)|\b(?:llamo|llamar|ligar|appeler|anrufen|chiamare|call|ring)\b.{0,20}"
    r"\b(?:n[uú]mero|num[ée]ro|nummer|numero|tel[eé]fono|telefone)|"
    r"(?:where|how) (?:can|do|could|should) (?:i|we) (?:get|find|ask for) (?:help|support)|"
    r"what (?:number|line) (?:can|should|do) (?:i|we) (?:call|ring)|(?:crisis|suicide|help) ?(?:line|hotline|team)|"
    r"hotline|samaritans|how (?:do|can|should) (?:i|we) (?:help|support|talk to|approach) (?:him|her|them|my \w+)|"
    r"a qui[eé]n (?:puedo |debo |podemos )?(?:llamar|acudir|recurrir|pedir ayuda)|d[oó]nde (?:puedo )?(?:pido|pedir|"
    r"busco|buscar|encuentro|encontrar|consigo|conseguir) ayuda|c[oó]mo (?:le )?"
    r"(?:ayudo|puedo ayudar)|tel[eé]fono de (?:la esperanza|ayuda|crisis)|"
    r"vers qui (?:me |je peux me |puis-je me )?tourner|[àa] qui (?:parler|m'adresser|je peux (?:parler|m'adresser))|"
    r"qui (?:appeler|contacter)|comment (?:l'|lui )?(?:aider|parler)|"
    r"num[ée]ro (?:d'[ée]coute|d'aide)|sos amiti[ée]|"
    r"an wen (?:kann ich mich |soll ich mich )?wenden|wen (?:kann|soll) ich anrufen|wo (?:bekomme|finde|kriege) "
    r"ich hilfe|wie (?:kann ich (?:ihm|ihr) helfen|helfe ich)|"
    r"telefonseelsorge|krisendienst|nummer gegen kummer|"
    r"(?:para|pra) quem (?:eu )?(?:posso |devo )?ligar|onde (?:posso |eu )?(?:buscar|procurar|conseguir|pedir) "
    r"ajuda|com quem (?:posso |eu )?falar|como (?:posso )?ajud[aá]-l[oa]|cvv|"
    r"sos voz amiga|"
    r"a chi (?:posso |devo )?(?:rivolgermi|chiamare|chiedere aiuto)|a chi (?:mi )?(?:posso|devo) rivolgere|"
    r"chi (?:posso |devo )?chiamare|dove (?:posso )?"
    r"(?:trovare|chiedere) aiuto|come (?:posso )?aiutarl[oa]|telefono amico)",
    re.IGNORECASE)
# ... but not help to carry it out or to hide it
HELP_TO_HARM = re.compile(r"\b(?:go(?:es|ing)? through with|make sure (?:she|he|they|i) (?:dies?|succeeds?)|"
                          r"without (?:anyone|them|her|him) (?:knowing|noticing|finding out)|sin que|sans que|"
                          r"ohne dass|sem que|senza che|para que pase|pour que (?:ça|cela) passe|damit es durchgeht|"
                          r"sell|selling|vender|vendre|verkaufen|vendere|falsely|falsamente|faussement|"
                          r"f[äa]lschlich\w*|hide|hiding|cover (?:it )?up|conceal\w*|avoid\w*|evitar|[ée]viter|"
                          r"vermeiden|evitare|esconder|ocultar|cacher|verstecken|nascondere|"
                          # not reporting, or a change made afterwards that is not to show
                          r"fail\w* to report|not (?:to )?report|without reporting|no (?:reportar|denunciar|notificar)|"
                          r"ne pas (?:signaler|d[ée]clarer)|nicht (?:zu )?melden|n[ãa]o (?:notificar|denunciar)|"
                          r"non segnalare|after the fact|apr[èe]s coup|nachtr[äa]glich|a posteriori|retroa?ctiv\w*|"
                          r"r[ée]troactiv\w*|backdat\w*|without (?:a|any) trace|sans (?:laisser de )?traces?|"
                          r"sin (?:dejar )?rastro|ohne spuren|sem deixar rastro|senza lasciare traccia|ne montre pas|"
                          r"doesn'?t show|won'?t show|no se (?:vea|note)|nicht sieht|"
                          # doing it quickly or surely; harming someone else ("kill her", not "kill herself");
                          # taking what is not one's own
                          r"quick(?:est|ly)? (?:way|and painless\w*)|painless\w*|make sure|for sure|succeed\w*|"
                          r"(?:kill|murder|poison|hurt|harm|drug|sedate) (?:my|his|her|their|the|a|an|him|them)|"
                          r"stop (?:his|her|their|a patient's|the patient's) heart|knock (?:him|her|them) out|"
                          r"matar (?:a|al)|matarl[oa]s?|(?:le|la|les) tuer|(?:ihn|sie) (?:zu )?(?:t[öo]ten|umbringen)|"
                          r"uccider(?:lo|la|li)|envenen\w*|empoisonn\w*|vergift\w*|avvelen\w*|"
                          r"break into|steal\w*|stole|robar|voler|stehlen|rubare|nobody (?:finds out|knows|notices)|"
                          r"no one (?:finds out|knows|notices)|to say|to show|so (?:it|that it) (?:says|shows|reads)|"
                          r"so (?:my|the|his|her) \w+ (?:accepts?|believes?|pays?)|get rid of (?:my|his|her|the) "
                          r"(?:husband|wife|partner|mother|father|mum|mom|dad|boss|baby|child|patient|neighbou?r))\b",
                          re.IGNORECASE)
CORRECTED = (r"correct\w*|rectif\w*|corregir|corrij\w*|correg\w*|correcci[óo]n|corrig\w*|correggere|correzione|"
             r"corre[çc][ãa]o|berichtig\w*|korrigier\w*|korrektur|amend\w*|refaire|rifare|rehacer|refazer")
RECORD = (r"(?:medical )?records?|chart|notes|certificate|discharge (?:letter|summary)|historia cl[ií]nica|expediente|"
          r"informe|dossier(?: m[ée]dical)?|certificat|compte[- ]rendu|akte|patientenakte|befund|entlassbrief|"
          r"arztbrief|"
          r"attest|prontu[áa]rio|laudo|relat[óo]rio|certificado|cartella(?: clinica)?|referto|certificato|fascicolo")
# What a careful person asks (the largest safe dose, getting rid of leftover medicines, keeping them out of reach,
# reporting abuse or an error, having a record corrected),
# in the six languages: where only the classifier objected and nobody is at risk, the request is answered
PROTECTIVE = {
    "the largest safe dose": re.compile(
        r"\b(?:(?:don'?t|do not) want to (?:take too much|overdo it|overdose)|without (?:overdoing|exceeding|going "
        r"over)|so (?:that )?i don'?t (?:take too much|overdose)|no (?:me )?quiero pasar(?:me)?|sin pasarme|"
        r"(?:paura|timore) di (?:sovradosar\w*|esagerare)|senza esagerare|n[ãa]o quero (?:exagerar|passar d\w+)|"
        r"sem exagerar|(?:pour ne pas|sans) d[ée]passer|(?:um nicht zu|ohne zu) [üu]berdosieren)\b|"
        # the largest dose allowed: the canonical look-alike of a lethal-dose question
        r"\b(?:max(?:imum|imal|imale)?|m[aá]xim[ao]|massim[ao]|h[öo]chst\w*)\b[^.?!]{0,30}\b(?:dose|doses|dosis|dosi|"
        r"dosage|dosierung|tagesdosis|geben|per day|a day|al d[ií]a|par jour|pro tag|al giorno|por dia)\b|"
        r"\b(?:dosis|dose|dosi|dosage)\s+(?:diaria\s+|di[áa]ria\s+|journali[èe]re\s+|giornaliera\s+)?"
        r"(?:m[aá]xim[ao]|maximale?|massim[ao])\b",
        re.IGNORECASE),
    "getting rid of leftover medicines": re.compile(
        r"\b(?:dispos(?:e|al) of|get rid of|throw away|return|deshacerme de|deshago de|desechar|se d[ée]barrasser|"
        r"jeter|rapporter|descartar|entregar|devolver|smaltire|buttare|riportare|entsorg\w*|zur[üu]ckgeben)\b"
        r".{0,80}\b(?:leftover|unused|expired|old|que (?:le )?sobr\w+|sobrantes?|restes?|p[ée]rim[ée]s?|non utilis\w+|"
        r"vencid[oa]s?|que sobrou|avanzat[ie]|scadut[ie]|[üu]brig\w*|abgelaufen\w*|del (?:la )?(?:mi )?(?:difunt|"
        r"fallecid)\w*|apr[èe]s le d[ée]c[èe]s|da minha falecida|morphine|morfina|morphin|fentanyl\w*|"
        r"fentanilo|patch\w*|parches|cerotti|pflaster|remédio controlado)\b", re.IGNORECASE),
    "keeping medicines out of someone's reach": re.compile(
        r"\block(?:ed|ing)? (?:\w+ ){0,3}(?:away|up)\b|\block ?box|\blocked (?:box|cabinet|drawer)\b|"
        r"\b(?:store\w*|keep\w*)\b.{0,60}\b"
        r"(?:so (?:that )?"
        r"(?:she|he|they|the kids|the children|nobody|no one) (?:can'?t|cannot|won'?t) (?:get|reach|take|find)|out of "
        r"(?:reach|the reach)|bajo llave|fuera del alcance|sous cl[ée]|hors de (?:la )?port[ée]e|unter verschluss|"
        r"au[ßs]er reichweite|fora do alcance|trancad\w+|sotto chiave|fuori dalla portata)", re.IGNORECASE),
    "reporting abuse, diversion or an error": re.compile(
        r"\b(?:report\w*|whistleblow\w*|denunci\w*|notific\w*|signal\w*|melde\w*|meldung|anzeige\w*|segnal\w*|"
        r"sinaliz\w*|comunicar)\b.{0,80}\b(?:abuse|neglect|diversion|misconduct|malpractice|(?:medication )?errors?|"
        r"maltrato\w*|maltraitance|n[ée]gligence|erreur|misshandlung|vernachl[äa]ssigung|fehler|maus[- ]tratos|"
        r"neglig[êe]ncia|erro|maltrattament\w*|errore|abuso|abus)\b", re.IGNORECASE),
    "an accident, and what to do now": re.compile(ACCIDENT_NOW, re.IGNORECASE),
    "having one's own record corrected": re.compile(
        r"^(?=[\s\S]*?\b(?:my|mi|mis|mon|ma|mes|mein\w*|meu|minha|meus|mio|mia|miei|own)\b)[\s\S]*?"  # one's own
        r"(?:\b(?:" + CORRECTED + r")\b.{0,150}\b(?:" + RECORD + r")\b|\b(?:" + RECORD + r")\b.{0,150}\b(?:"
        + CORRECTED + r")\b)", re.IGNORECASE),
}


def protective(text: str) -> str | None:
    """What careful thing the text asks (a key of PROTECTIVE), or None; never for help to hide or sell."""
    if HELP_TO_HARM.search(text):
        return None
    return next((what for what, pattern in PROTECTIVE.items() if pattern.search(text)), None)


# The answer's own rules: instructions for harm, each within one sentence. A sentence that negates or warns before
# the match ("never crush the pills into her tea") is advice, not an instruction, and does not count.
ANSWER_BUILTIN: dict[str, list[str]] = {
    "self_harm": [
        r"\b(?:take|swallow|inject|drink|use|crush)\b[^.!?\n]{0,60}\b(?:to|so (?:that )?you(?: will|'ll| can)?|and "
        r"you(?: will|'ll))\s+(?:die|never wake up|not wake up|end your life|kill yourself)\b",
        r"\b(?:painless|quickest|easiest|surest|best|most reliable) (?:way|method) to (?:kill yourself|end your life|"
        r"die|commit suicide) (?:is|would be)\b",
    ],
    "harm_to_others": [
        r"\b(?:slip|crush|mix|dissolve|hide|add|stir)\b[^.!?\n]{0,50}\b(?:in|into)\s+(?:his|her|their|the "
        r"(?:victim|person|target)'?s)\s+(?:drink|coffee|tea|food|meal|soup|juice|formula|bottle)\b",
        r"\b(?:make|making) (?:it|the death|his death|her death|their death) look like (?:an accident|natural "
        r"causes|a heart attack|suicide|an overdose)\b",
    ],
    "controlled_drugs": [
        r"\bto (?:make|cook|synthesi[sz]e|extract)\b[^.!?\n]{0,40}\b(?:meth\w*|fentanyl|heroin|ghb|lsd|codeine|"
        r"morphine|dmt)\b[^.!?\n]{0,40}\b(?:you(?:'ll| will)? need|start by|first|combine|mix|heat)\b",
    ],
    "falsified_records": [
        r"\bhere(?:'s| is) (?:a|the|your) (?:fake|forged|falsified|backdated)\b",
    ],
}
NEGATION = re.compile(r"\b(?:not|never|don'?t|do not|avoid|shouldn'?t|should not|must not|illegal|dangerous|"
                      r"instead of|rather than|refuse|can'?t|cannot)\b")

# Texts in which the built-in rules do not fire (the classifier and safety.rules still judge them): exam-style
# case vignettes, whose patients say and do alarming things, and questions about games and fiction.
CONTEXTS = [
    re.compile(r"^\W*(?:an?|the)\s+(?:\d+|[a-z]+(?:-[a-z]+)?)[- ](?:year|month|week|day)[- ]old\b.{20,}", re.I | re.S),
    re.compile(r"\bin (?:a |the )?(?:video ?game|game|novel|book|movie|film|tv show|show|series|play|call of duty|"
               r"the witcher|minecraft|fortnite|gta|skyrim|cluedo|an agatha christie)\b", re.I),
]


# A threat said as a joke ("I swear I'm going to strangle him 🙄", "je vais la tuer mdr"): laughter or an eye-roll
# in the text. The built-in harm-to-others rules do not fire on it unless it names a method (poison, sedate, ...);
# the classifier still judges it, and the self-harm rules still fire: "lol" does not make a wish to die a figure of
# speech.
JOKING = re.compile(r"(?:😂|🤣|😅|😆|🙄|😩|😫|\b(?:lol|lmao|rofl|haha\w*|hehe\w*|jk|just kidding|"
                    r"jaja\w*|"
                    r"mdr|kkk+|xd)\b)", re.IGNORECASE)


METHOD = re.compile(r"\b(?:poison\w*|drug (?:him|her|them)|sedat\w*|smother\w*|suffocat\w*|stab\w*|overdose (?:him|her|"
                    r"them)|envenen\w*|empoisonn\w*|vergift\w*|avvelen\w*|inject\w*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: re.Pattern
    source: str  # "built-in" or "safety.rules"
    stage: str = "request"  # the texts it screens: "request", "answer" or "both"
    number: int = 1  # its place among its source's rules of this category and stage, counted from 1

    def describe(self) -> str:
        """Which rule, not its pattern: a reply that quoted the pattern would teach how to word around it."""
        stage = " answer" if self.stage == "answer" else ""
        return f"{self.source}{stage} {self.category} rule {self.number}"

    def applies_to(self, stage: str) -> bool:
        return self.stage in (stage, "both")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces: what every pattern is written against."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def compile_rules(extra: dict | None = None) -> list[Rule]:
    """The built-in rules plus safety.rules; an unknown category or a bad pattern is a ConfigError."""
    rules = [Rule(cat, re.compile(p, re.I), "built-in", stage, n)
             for stage, table in (("request", BUILTIN), ("answer", ANSWER_BUILTIN))
             for cat, ps in table.items() for n, p in enumerate(ps, 1)]
    for category, patterns in (extra or {}).items():
        if category not in CATEGORIES and category != "allow":
            raise ConfigError(f"safety.rules: unknown category {category!r}; use one of "
                              f"{', '.join([*CATEGORIES, 'allow'])}")
        for n, p in enumerate([patterns] if isinstance(patterns, str) else patterns or [], 1):
            try:
                rules.append(Rule(category, re.compile(str(p), re.I), "safety.rules", "both", n))
            except re.error as e:
                raise ConfigError(f"safety.rules.{category}: {p!r} is not a valid regular expression ({e})") from None
    return rules


def first_match(rules: list[Rule], text: str, stage: str = "request") -> Rule | None:
    """The rule that decides: an allow rule wins, then the first harmful category that matches, then an
    emergency (which the layer answers with advice and the model's answer, when nothing harmful matched)."""
    return deciding(matching(rules, text, stage))


def matching(rules: list[Rule], text: str, stage: str = "request") -> list[Rule]:
    """Every rule that matches the text, in order; in a case vignette or a game, only allow and config rules; in a
    joke, no built-in harm-to-others rule."""
    text = normalise(text)
    in_context = any(c.search(text) for c in CONTEXTS)
    joking = stage == "request" and JOKING.search(text) is not None and not METHOD.search(text)
    return [r for r in rules if r.applies_to(stage) and _matches(r, text)
            and not (in_context and r.source == "built-in" and r.category != "allow")
            and not (joking and r.source == "built-in" and r.category == "harm_to_others")]


def deciding(hits: list[Rule]) -> Rule | None:
    """Of the rules that matched, the one that decides (see first_match); the config's own rules (safety.rules)
    come before the built-in ones, so a built-in allow (an exam question) never overrides an operator's rule."""
    def ranked(source: bool) -> list[Rule]:
        mine = [r for r in hits if (r.source == "built-in") == source]
        return [r for r in mine if r.category == "allow"] + [r for r in mine if r.category not in ("allow",
                                                                                                "emergency")]
    return next(iter(ranked(False) + ranked(True) + hits), None)


def _matches(rule: Rule, text: str) -> bool:
    if rule.stage != "answer":
        return rule.pattern.search(text) is not None
    for hit in rule.pattern.finditer(text):
        sentence_start = max(text.rfind(end, 0, hit.start()) for end in ".!?\n") + 1
        if not NEGATION.search(text, sentence_start, hit.start() + 1):
            return True
    return False
