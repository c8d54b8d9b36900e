//! The keys every report groups by, as the contract defines them.

/// `form.name` if non-empty, else `form.id`, else `form-<order>`.
pub fn form_key(name: &str, id: &str, order: i32) -> String {
    first_non_empty(name, id).map_or_else(|| format!("form-{order}"), str::to_owned)
}

/// `field.name` if non-empty, else `field.id`, else `field-<order>`.
pub fn field_key(name: &str, id: &str, order: i32) -> String {
    first_non_empty(name, id).map_or_else(|| format!("field-{order}"), str::to_owned)
}

fn first_non_empty<'a>(name: &'a str, id: &'a str) -> Option<&'a str> {
    [name, id].into_iter().find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_wins_then_id_then_order() {
        assert_eq!(form_key("signup", "f1", 2), "signup");
        assert_eq!(form_key("", "f1", 2), "f1");
        assert_eq!(form_key("", "", 2), "form-2");
        assert_eq!(field_key("email", "e", 0), "email");
        assert_eq!(field_key("", "e", 0), "e");
        assert_eq!(field_key("", "", 7), "field-7");
    }
}
