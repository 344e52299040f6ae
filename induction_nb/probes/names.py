"""Names and long words from public-domain books (all published before 1900), for the concept induction
probe's word list (``probes.dual_route.words_from_text``): proper names and rare words are the ones a
tokenizer splits into several tokens. Kept apart from ``probes.passages`` so that the passages, which
other probes read, never change when this list grows.
"""

NAMES = (
    # Dickens, A Tale of Two Cities; Great Expectations; Bleak House; Oliver Twist; David Copperfield
    "Manette Darnay Carton Defarge Stryver Cruncher Gabelle Evremonde Pross Jarvis Lorry Barsad Cly "
    "Pumblechook Jaggers Havisham Estella Wemmick Magwitch Compeyson Wopsle Gargery Trabb Startop Drummle "
    "Jarndyce Summerson Dedlock Tulkinghorn Skimpole Krook Jellyby Turveydrop Chadband Snagsby Guppy "
    "Fagin Bumble Brownlow Sowerberry Noah Claypole Dawkins Grimwig Maylie Monks Sikes "
    "Copperfield Peggotty Micawber Murdstone Steerforth Heep Traddles Betsey Trotwood Wickfield Creakle "
    # Austen, Pride and Prejudice; Emma; Persuasion; Northanger Abbey
    "Netherfield Longbourn Pemberley Rosings Meryton Bingley Wickham Collins Gardiner Fitzwilliam Lucas "
    "Hartfield Woodhouse Knightley Elton Churchill Fairfax Bates Weston Highbury Donwell Randalls "
    "Kellynch Elliot Wentworth Musgrove Uppercross Russell Benwick Harville Lyme "
    "Northanger Tilney Thorpe Morland Fullerton Allen "
    # Melville, Moby-Dick
    "Ishmael Queequeg Ahab Starbuck Stubb Flask Tashtego Daggoo Pequod Fedallah Pip Bildad Peleg "
    "Nantucket Rachel Bulkington Mapple Gabriel Jeroboam Bachelor Samuel Enderby Leviathan Cachalot "
    # Carroll, Alice's Adventures in Wonderland; Through the Looking-Glass
    "Dormouse Gryphon Cheshire Tweedledum Tweedledee Humpty Dumpty Jabberwock Bandersnatch Tumtum "
    "Caterpillar Duchess Hatter Hare Dinah Mabel Bill Tove Borogove Rath Snark "
    # Bronte, Jane Eyre; Wuthering Heights
    "Rochester Thornfield Lowood Brocklehurst Helen Burns Temple Fairfax Adele Varens Mason Rivers "
    "Heathcliff Earnshaw Linton Catherine Hindley Hareton Lockwood Dean Thrushcross Gimmerton Zillah "
    # Stevenson, Stoker, Shelley, Doyle, Verne, Tolstoy and Dostoevsky in translation
    "Jekyll Hyde Utterson Lanyon Poole Hawkins Silver Trelawney Livesey Smollett Gunn Flint Hispaniola "
    "Dracula Harker Seward Helsing Renfield Westenra Holmwood Morris Carfax Whitby Transylvania Bistritz "
    "Frankenstein Elizabeth Lavenza Clerval Justine Moritz Walton Ingolstadt Geneva Chamounix "
    "Sherlock Holmes Watson Lestrade Moriarty Mycroft Hudson Baskerville Dartmoor Grimpen Stapleton "
    "Nemo Nautilus Aronnax Conseil Ned Land Phileas Fogg Passepartout Fix Aouda "
    "Karenina Vronsky Levin Oblonsky Shcherbatsky Pierre Bezukhov Bolkonsky Rostov Natasha Kutuzov "
    "Raskolnikov Sonya Marmeladov Svidrigailov Razumikhin Porfiry Karamazov Alyosha Smerdyakov Zosima "
    # places and rare words of the same books
    "Canterbury Marlborough Winchester Salisbury Shrewsbury Gloucester Worcester Leicester Peterborough "
    "Constantinople Alexandria Samarkand Timbuctoo Zanzibar Valparaiso Madagascar Mesopotamia "
    "incredulity superlative neighbourhood involuntarily hypochondria phantasmagoria melancholy "
    "perpendicular extraordinary circumlocution harpooneer forecastle binnacle mizzen taffrail "
)
