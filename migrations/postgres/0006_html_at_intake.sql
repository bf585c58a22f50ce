-- The HTML body of a mail is sanitised once, when the mail comes in (issue 10, finding 4):
-- the citizen's page serves html_safe and never runs the sanitiser. html_withheld says why an
-- HTML body is not shown (too_large | too_deep | unusual_markup): the page shows the text part.
-- Both NULL with html set: stored before this migration, sanitised on its first view.
-- Keep in step with the other backend's 0006.
ALTER TABLE message ADD COLUMN html_safe TEXT;
ALTER TABLE message ADD COLUMN html_withheld TEXT;
