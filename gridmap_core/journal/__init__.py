"""Maps that outlive their submitting process: each map's journal (:mod:`.store`),
the record of the process that submitted it (:mod:`.submitter`), finding the maps of
this user (:mod:`.catalog`), and acting on one: its jobs' logs, cancelling it
(:mod:`.control`)."""
