"""The keyword tables of the local classification rules (:mod:`core.classify_rules`): data only.

Kept apart from the logic so the tables can grow without hiding it.  Every entry is a regex fragment matched
case-insensitively as a whole word (or phrase) by :mod:`core.classify_rules`; a space in a fragment matches any
run of spaces or hyphens (``real estate`` also matches ``real-estate``).  ``(?-i:IT)`` keeps "IT" from
matching the pronoun "it".

**Changing a table changes classifications: bump** :data:`core.taxonomy.TAXONOMY_VERSION`.

Why these words: they name what a company *is* or *makes* (a kind: "bakery", "road haulier"; a product:
"sourdough bread", "wind farms"), not whom it serves.  Customers are named too in activity texts ("... for
hospitals and schools"), which is why the rules take the *first* keyword of a text (subjects come first in
company descriptions) and why phrases that name a customer or a product of another trade ("agricultural
lending", "retail parks", "cloud storage") are listed as phrases of their own: at the same position a longer
phrase wins over its first word.
"""

from __future__ import annotations

from typing import Final

#: (section, division or None, fragments); a None division places the section only
SectorRule = tuple[str, str | None, tuple[str, ...]]

# fmt: off
SECTOR_RULES: Final[tuple[SectorRule, ...]] = (
    # A  Agriculture, forestry and fishing
    ("A", "01", (r"farms?", r"farming", r"farmers?", r"growers?", r"horticultur\w*", r"greenhouses?", r"agricultur\w*",
                 r"crops?", r"livestock", r"vegetables?", r"orchards?", r"vineyards?", r"cattle", r"poultry", r"arable",
                 r"agribusiness", r"fresh herbs", r"lettuce", r"cucumbers", r"potatoes", r"asparagus")),
    ("A", "02", (r"forestry", r"logging", r"forest management")),
    ("A", "03", (r"fishing", r"fisher(?:y|ies)", r"aquaculture", r"fish farms?")),
    # B  Mining and quarrying
    ("B", "05", (r"coal mines?", r"coal mining", r"lignite")),
    ("B", "06", (r"crude oil", r"oil and gas (?:production|exploration)", r"natural gas extraction")),
    ("B", "07", (r"metal ores?", r"iron ore", r"copper mines?")),
    ("B", "08", (r"quarr(?:y|ies|ying)", r"sand and gravel", r"salt mines?")),
    ("B", "09", (r"oilfield services", r"drilling services")),
    ("B", None, (r"mining", r"mines?")),
    # C  Manufacturing
    ("C", "10", (r"bakery", r"bakeries", r"bakehouse", r"patisserie", r"bakes", r"bread", r"breads", r"loaves",
                 r"croissants", r"viennoiserie", r"pastr(?:y|ies)", r"dairy", r"dairies", r"cheeses?", r"cheese maker",
                 r"creamery", r"food processors?", r"food processing", r"food manufactur\w*", r"meat processing",
                 r"confectionery", r"chocolate", r"bakkerij", r"b[äa]ckerei", r"boulangerie", r"panader[ií]a",
                 r"panificio", r"piekarnia", r"bageri", r"fromagerie", r"molkerei", r"k[äa]serei", r"caseificio",
                 r"mejeri")),
    ("C", "11", (r"brewery", r"breweries", r"brewing", r"brews", r"brewers?", r"beers?", r"ales", r"lagers?", r"winery",
                 r"wineries", r"distiller(?:y|ies)", r"soft drinks", r"brouwerij", r"brauerei", r"brauhaus",
                 r"birrificio", r"browar", r"bryggeri", r"bryghus")),
    ("C", "12", (r"tobacco", r"cigarettes?", r"cigars?")),
    ("C", "13", (r"textiles?", r"weaving", r"spinning mills?")),
    ("C", "14", (r"apparel", r"clothing manufactur\w*", r"garments?")),
    ("C", "15", (r"leather", r"footwear")),
    ("C", "16", (r"sawmills?", r"sawmilling", r"saws and planes", r"timber", r"lumber", r"wood products",
                 r"woodworking", r"joinery", r"glulam", r"construction timber", r"sawn timber", r"softwood",
                 r"hardwood", r"s[äa]gewerk", r"scierie", r"tartak", r"segheria", r"zagerij", r"s[åa]gverk")),
    ("C", "17", (r"paper mills?", r"pulp", r"cardboard", r"paper products")),
    ("C", "18", (r"printing", r"printers?", r"print shops?")),
    ("C", "19", (r"refinery", r"refineries", r"refined petroleum")),
    ("C", "20", (r"chemicals?", r"chemical producers?", r"chemicals manufacturers?", r"solvents", r"paints",
                 r"coatings", r"fertili[sz]ers?", r"detergents?", r"intermediates", r"chemie", r"chimie", r"chimica",
                 r"qu[ií]mica")),
    ("C", "21", (r"pharmaceuticals?", r"pharma", r"biopharma", r"drug manufacturers?", r"medicines", r"generic drugs?",
                 r"injectables", r"veterinary medicines", r"oncology treatments", r"orphan drugs")),
    ("C", "22", (r"plastics?", r"rubber", r"packaging manufacturers?", r"plastic packaging", r"plastics converters?",
                 r"pet bottles", r"containers and crates", r"closures", r"thermoformed", r"injection moulded",
                 r"kunststoff(?:e|en)")),
    ("C", "23", (r"glass", r"ceramics?", r"cement", r"concrete products", r"bricks")),
    ("C", "24", (r"steelworks", r"steel mills?", r"foundry", r"foundries", r"smelters?", r"basic metals")),
    ("C", "25", (r"machining", r"machine shops?", r"machined parts", r"metalwork(?:s|ing)?", r"(?-i:CNC)",
                 r"sheet metal", r"fabricated metal", r"precision engineering", r"milled (?:parts|components)",
                 r"turned and milled", r"metaalbewerking", r"zerspanungstechnik", r"pr[äa]zisionstechnik", r"usinage",
                 r"mecanizados", r"meccanica")),
    ("C", "26", (r"semiconductors?", r"electronics manufactur\w*", r"printed circuit boards?", r"optical instruments")),
    ("C", "27", (r"electrical equipment", r"electric motors", r"cables and wires", r"lighting equipment")),
    ("C", "28", (r"machinery", r"machine builders?", r"cranes?", r"hoists?",
                 r"lifting (?:equipment|devices|solutions)", r"lifting", r"handling equipment",
                 r"materials handling", r"handling systems", r"industrial equipment", r"pumps", r"compressors",
                 r"machine tools", r"agricultural machinery", r"forklift attachments", r"crane builders?",
                 r"hebetechnik", r"krantechnik", r"f[öo]rdertechnik", r"levage", r"sollevamento")),
    ("C", "29", (r"automotive", r"car manufacturers?", r"auto parts", r"vehicle components", r"tier [12] suppliers?",
                 r"wire harnesses", r"brake system components", r"interior trim parts", r"fahrzeugteile")),
    ("C", "30", (r"shipbuilding", r"shipyards?", r"aircraft manufactur\w*", r"rolling stock", r"bicycles")),
    ("C", "31", (r"furniture manufactur\w*", r"furniture")),
    ("C", "32", (r"jewellery", r"toys", r"medical devices", r"musical instruments", r"sports goods")),
    ("C", "33", (r"repair and maintenance of (?:machinery|industrial equipment)", r"industrial maintenance")),
    ("C", None, (r"manufactur(?:er|ers|ing|es)", r"factory", r"factories", r"contract manufacturers?", r"components")),
    # D  Electricity, gas, steam and air conditioning supply
    ("D", "35", (r"electricity", r"power producers?", r"power plants?", r"power stations?", r"energy compan(?:y|ies)",
                 r"utility", r"utilities", r"renewable energy", r"renewables", r"wind farms?", r"wind parks?",
                 r"solar parks?", r"solar farms?", r"energy suppliers?", r"gas supply", r"district heating",
                 r"hydro(?:power)?", r"hydro plants?", r"battery storage", r"combined heat and power", r"energie",
                 r"energia", r"energi", r"stadtwerke")),
    # E  Water supply; sewerage, waste management and remediation activities
    ("E", "36", (r"water supply", r"water utility", r"drinking water", r"water treatment")),
    ("E", "37", (r"sewerage", r"wastewater", r"sewage")),
    ("E", "38", (r"waste collection", r"waste management", r"recycling", r"waste disposal", r"materials recovery")),
    ("E", "39", (r"remediation", r"decontamination", r"soil sanitation")),
    # F  Construction
    ("F", "41", (r"construction compan(?:y|ies)", r"general contractors?", r"building contractors?", r"homebuilders?",
                 r"housebuilders?", r"constructs", r"residential housing", r"housing projects",
                 r"building construction", r"timber frame homes", r"apartment blocks", r"renovations?", r"retrofits",
                 r"industrial halls", r"bouw", r"bau", r"bygg", r"byg", r"costruzioni", r"construcciones",
                 r"constructions")),
    ("F", "42", (r"civil engineering contractors?", r"road construction", r"roadworks",
                 r"infrastructure contractors?")),
    ("F", "43", (r"plumbing", r"plumbers?", r"(?-i:HVAC)", r"heating installations?", r"installation compan(?:y|ies)",
                 r"install(?:s|er|ers)", r"electricians?", r"electrical installations?", r"roofing", r"roofers?",
                 r"demolition", r"painting and decorating", r"carpentry", r"heat pumps", r"sanitary installations",
                 r"sprinkler systems", r"gas boilers", r"heating systems", r"building management systems",
                 r"ventilation", r"air conditioning systems", r"underfloor heating", r"installatiebedrijf",
                 r"haustechnik", r"vvs")),
    ("F", None, (r"construction", r"contractors?", r"builders?")),
    # G  Wholesale and retail trade; repair of motor vehicles and motorcycles
    ("G", "45", (r"car dealers?", r"car dealerships?", r"motor vehicle trade", r"car repair", r"garages?")),
    ("G", "46", (r"wholesale", r"wholesalers?", r"distributors?", r"distributes", r"trading compan(?:y|ies)",
                 r"import(?:s|ers?)? and (?:export|distribut)\w*", r"catering supplies", r"hardware goods",
                 r"food and non food products", r"office and cleaning supplies", r"groothandel", r"gro[ßs]handel",
                 r"hurtownia")),
    ("G", "47", (r"retail", r"retailers?", r"supermarkets?", r"grocery", r"groceries", r"grocers?", r"shops?",
                 r"stores?", r"webshops?", r"e[\s-]?commerce", r"online stores?", r"convenience stores?",
                 r"pharmac(?:y|ies)", r"bookshops?", r"florists?", r"supermarkt", r"supermarch[ée]", r"supermercad?os?",
                 r"supermercati", r"delikatesy")),
    # H  Transportation and storage
    ("H", "49", (r"road hauliers?", r"haulage", r"hauliers?", r"trucking", r"freight transport", r"road transport",
                 r"transport compan(?:y|ies)", r"truckload", r"groupage", r"freight", r"bus compan(?:y|ies)", r"taxis?",
                 r"rail freight", r"pipelines?", r"transport", r"transports", r"transporte", r"trasporti", r"spedition",
                 r"[åa]keri", r"vognmandsforretning")),
    ("H", "50", (r"shipping compan(?:y|ies)", r"ferry", r"ferries", r"inland shipping", r"maritime transport",
                 r"sea freight")),
    ("H", "51", (r"airlines?", r"air cargo", r"air freight", r"charter flights")),
    ("H", "52", (r"warehous\w*", r"storage", r"fulfil?ment", r"logistics", r"freight forward\w*", r"port operators?",
                 r"cross dock\w*", r"e[\s-]?commerce fulfil?ment", r"logistiek", r"logistik", r"logistique",
                 r"opslag")),
    ("H", "53", (r"couriers?", r"parcel delivery", r"postal", r"post offices?")),
    # I  Accommodation and food service activities
    ("I", "55", (r"hotels?", r"hostels?", r"resorts?", r"accommodation", r"bed and breakfast", r"guesthouses?",
                 r"campsites?", r"holiday parks?", r"serviced apartments", r"h[ôo]tel", r"albergo", r"hostal",
                 r"gasthof")),
    ("I", "56", (r"restaurants?", r"caf[ée]s?", r"pubs?", r"bars?", r"catering", r"caterers?", r"takeaways?",
                 r"pizzerias?", r"bistros?", r"brasseries?", r"fast food", r"food trucks?", r"dining", r"diners",
                 r"canteens?", r"food service compan(?:y|ies)", r"ristorante", r"restaurante", r"trattoria", r"osteria",
                 r"gasthaus", r"eetcaf[ée]", r"taberna", r"restauracja")),
    # J  Information and communication
    ("J", "58", (r"software publish\w*", r"software vendors?", r"publishers?", r"publishing", r"newspapers?",
                 r"magazines?", r"publishes", r"accounting software", r"payroll software",
                 r"warehouse management software", r"practice management software", r"(?-i:ERP) software",
                 r"(?-i:HR) software", r"(?-i:CRM) software")),
    ("J", "59", (r"film production", r"video production", r"television production", r"music publishing",
                 r"recording studios?", r"cinemas?")),
    ("J", "60", (r"broadcast(?:er|ers|ing)", r"radio stations?", r"tv channels?", r"television channels?")),
    ("J", "61", (r"telecoms?", r"telecommunications?", r"mobile operators?", r"internet service providers?",
                 r"broadband", r"fib(?:re|er) networks?")),
    ("J", "62", (r"software", r"software development", r"(?-i:SaaS)",
                 r"(?-i:IT) (?:services|consult\w*|compan(?:y|ies)|firms?|solutions|support)", r"(?-i:ICT)",
                 r"computer programming", r"web development", r"e[\s-]?commerce platforms?", r"digital agenc(?:y|ies)",
                 r"web and mobile applications", r"mobile apps?", r"applications", r"cybersecurity",
                 r"machine learning", r"(?-i:AI)")),
    ("J", "63", (r"data cent(?:re|res|er|ers)", r"hosting", r"cloud hosting", r"web hosting", r"data processing",
                 r"cloud storage", r"managed (?:private )?cloud", r"colocation", r"information services",
                 r"web portals?", r"online market[\s-]?places?", r"search engines?", r"news agenc(?:y|ies)",
                 r"data mining", r"managed services provider")),
    # K  Financial and insurance activities
    ("K", "64", (r"banks?", r"banking", r"savings accounts", r"credit unions?", r"lending", r"lenders?", r"loans",
                 r"mortgages", r"agricultural lending", r"trade finance", r"asset based finance", r"payment services",
                 r"holding compan(?:y|ies)", r"investment funds?", r"banca", r"banco", r"banque", r"bankhaus",
                 r"sparkasse", r"sparbank", r"sparekasse", r"volksbank")),
    ("K", "65", (r"insurance", r"insurers?", r"reinsurance", r"pension funds?")),
    ("K", "66", (r"insurance brokers?", r"insurance agents?", r"asset management", r"wealth management",
                 r"fund management", r"stockbrokers?", r"financial advis\w*")),
    # L  Real estate activities
    ("L", "68", (r"real estate", r"property compan(?:y|ies)", r"property managers?", r"property management",
                 r"landlords?", r"lettings?", r"estate agents?", r"owns and lets", r"rents out", r"retail parks",
                 r"logistics real estate", r"student housing", r"residential apartments", r"office buildings",
                 r"vastgoed", r"immobili\w*", r"immo", r"fastigheter", r"ejendomme", r"nieruchomo\w*",
                 r"inmobiliaria")),
    # M  Professional, scientific and technical activities
    ("M", "69", (r"law firms?", r"lawyers?", r"solicitors?", r"notar(?:y|ies)", r"legal services", r"accountants?",
                 r"accounting", r"accountancy", r"bookkeeping", r"audits?", r"auditing", r"auditors?", r"tax advis\w*",
                 r"tax advice", r"tax planning", r"tax returns", r"payroll administration", r"annual accounts",
                 r"steuerberatung", r"boekhoudkantoor", r"fiduciaire", r"redovisning", r"revision")),
    ("M", "70", (r"management consult\w*", r"strategy consult\w*", r"consultanc(?:y|ies)", r"consulting",
                 r"business advis\w*", r"head offices?", r"interim management", r"change management", r"advice",
                 r"due diligence", r"business valuations", r"succession planning")),
    ("M", "71", (r"engineering consult\w*", r"engineering firms?", r"engineering services", r"architects?",
                 r"architectur\w*", r"structural engineering", r"surveying", r"surveys", r"testing laborator(?:y|ies)",
                 r"inspection", r"certification", r"technical consult\w*", r"engineering", r"civil engineering",
                 r"ingenieursbureau", r"ingenieurb[üu]ro", r"ing[ée]ni[ée]rie", r"ingegneria", r"ingenier[ií]a")),
    ("M", "72", (r"research and development", r"(?-i:R&D)", r"research", r"contract research", r"laborator(?:y|ies)",
                 r"labs?", r"feasibility studies", r"pilot plants?")),
    ("M", "73", (r"advertising", r"marketing agenc(?:y|ies)", r"creative agenc(?:y|ies)", r"media agenc(?:y|ies)",
                 r"market research", r"branding", r"brand identities", r"campaigns", r"marketing", r"reclamebureau",
                 r"werbeagentur", r"publicidad")),
    ("M", "74", (r"graphic design", r"industrial design", r"design stud(?:io|ios)", r"photograph(?:y|ers?)",
                 r"translation", r"interpreting")),
    ("M", "75", (r"veterinar(?:y|ians?)", r"vets?", r"animal clinics?")),
    # N  Administrative and support service activities
    ("N", "77", (r"car rental", r"equipment rental", r"rental", r"(?:equipment|plant|car|van) hire",
                 r"operational leasing")),
    ("N", "78", (r"recruitment", r"staffing", r"temp(?:ing|orary)? agenc(?:y|ies)", r"employment agenc(?:y|ies)",
                 r"headhunt\w*")),
    ("N", "79", (r"travel agenc(?:y|ies)", r"travel agents?", r"tour operators?")),
    ("N", "80", (r"security services", r"security guards?", r"private investigat\w*")),
    ("N", "81", (r"cleaning compan(?:y|ies)", r"cleaning services", r"facility management", r"landscaping",
                 r"pest control")),
    ("N", "82", (r"call cent(?:re|res|er|ers)", r"business support", r"debt collection", r"trade fairs?",
                 r"conference organi[sz]\w*")),
    # O  Public administration and defence; compulsory social security
    ("O", "84", (r"public administration", r"municipality", r"municipalities", r"ministry", r"ministries",
                 r"city council", r"local authorit(?:y|ies)", r"armed forces", r"defen[cs]e forces", r"police",
                 r"fire brigades?", r"social security", r"government agenc(?:y|ies)")),
    # P  Education
    ("P", "85", (r"schools?", r"education", r"training providers?", r"training courses?", r"training", r"academy",
                 r"universit(?:y|ies)", r"colleges?", r"language schools?", r"e learning", r"tutoring",
                 r"kindergartens?", r"vocational", r"courses", r"certification (?:programmes|courses)",
                 r"education institute", r"akademie", r"opleidingen", r"formation", r"formazione", r"utbildning",
                 r"uddannelse")),
    # Q  Human health and social work activities
    ("Q", "86", (r"hospitals?", r"clinics?", r"medical practices?", r"general practices?", r"(?-i:GP)", r"gp surgery",
                 r"doctors?", r"dentists?", r"dental practices?", r"physiotherap\w*", r"health cent(?:re|res|er|ers)",
                 r"medical cent(?:re|res|er|ers)", r"primary care", r"minor surgery", r"wound care",
                 r"chronic disease management", r"vaccinations", r"health checks", r"group practices?",
                 r"huisartsenpraktijk", r"praxis", r"hausarztpraxis", r"v[åa]rdcentral", r"przychodnia",
                 r"poliambulatorio")),
    ("Q", "87", (r"nursing homes?", r"care homes?", r"residential care")),
    ("Q", "88", (r"social work", r"childcare", r"child care", r"day care", r"home care")),
    # R  Arts, entertainment and recreation
    ("R", "90", (r"theat(?:re|res|er|ers)", r"performing arts", r"artists?", r"concert halls?")),
    ("R", "91", (r"museums?", r"librar(?:y|ies)", r"archives")),
    ("R", "92", (r"casinos?", r"gambling", r"betting", r"lotter(?:y|ies)")),
    ("R", "93", (r"fitness", r"gyms?", r"sports clubs?", r"amusement parks?", r"theme parks?", r"golf courses?")),
    # S  Other service activities
    ("S", "94", (r"trade associations?", r"business associations?", r"professional associations?", r"trade unions?",
                 r"political part(?:y|ies)", r"churche?s?", r"membership organi[sz]ations?")),
    ("S", "95", (r"computer repair", r"phone repair", r"electronics repair", r"shoe repair")),
    ("S", "96", (r"hairdressers?", r"hair salons?", r"beauty salons?", r"barbers?", r"laundr(?:y|ies)", r"dry cleaning",
                 r"funeral\w*", r"undertakers?", r"tattoo\w*", r"day spas?")),
    # T  Activities of households as employers; undifferentiated production of households for own use
    ("T", "97", (r"domestic (?:staff|personnel|workers?)", r"housekeepers?", r"nann(?:y|ies)", r"au pairs?")),
    ("T", "98", (r"subsistence farming", r"own use production")),
    # U  Activities of extraterritorial organisations and bodies
    ("U", "99", (r"embass(?:y|ies)", r"consulates?", r"extraterritorial", r"united nations",
                 r"international organi[sz]ations?")),
)
# fmt: on

#: business-model keyword kinds → fragments (see :mod:`core.classify_rules` for the order they apply in)
BUSINESS_MODEL_RULES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "b2b2c",
        (
            r"(?-i:B2B2C)",
            r"(?:businesses|companies|business customers) and (?:consumers|households|individuals|private customers)",
            r"(?:consumers|households|individuals|private customers) and (?:small )?(?:businesses|companies)",
        ),
    ),
    (
        "marketplace",
        (
            r"market[\s-]?places?",
            r"two sided",
            r"platforms? (?:connecting|that connects|matching) (?:buyers|sellers|consumers|customers)",
        ),
    ),
    (
        "public_education",
        (
            r"(?:public|state|municipal|government|publicly funded|state funded|government funded)"
            r" (?:schools?|universit(?:y|ies)|colleges?|education|kindergartens?|academy)",
        ),
    ),
    ("public_owned", (r"government owned", r"state owned", r"municipally owned", r"publicly owned")),
    ("b2b", (r"(?-i:B2B)", r"business to business")),
    (
        "consumer",
        (
            r"consumers",
            r"direct to consumers?",
            r"(?-i:D2C|B2C)",
            r"consumer facing",
            r"households",
            r"shoppers",
            r"homeowners",
            r"private (?:customers|clients|individuals|tenants)",
            r"retail (?:customers|clients|banking)",
            r"tourists",
            r"families",
            r"patients",
            r"diners",
            r"students",
            r"commuters",
            r"job seekers",
            r"local residents",
            r"(?:adult )?learners",
            r"its own (?:chain of )?shops",
            r"webshop",
            r"online shop",
        ),
    ),
)
